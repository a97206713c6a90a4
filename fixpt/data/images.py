"""Images for masked-pixel reconstruction (paper, Table 3): 75 % of the pixels blacked out, the
model asked for the whole image.

Sources: CIFAR-10 through ``torchvision.datasets.CIFAR10`` from ``<data root>/cifar10`` (the
``cifar-10-batches-py`` folder of the official release; nothing is downloaded), and, as the
offline default, scikit-learn's bundled 8 x 8 handwritten digits (``sklearn.datasets.load_digits``:
1797 real images shipped inside scikit-learn). Pixels are scaled to [0, 1]. Each image gets one
fixed mask (the same across channels), drawn with ``mask_seed``, so every run sees the same
corrupted inputs. Splits: digits 2/3 : 1/6 : 1/6 in scikit-learn's order; CIFAR-10 the last 5000
training images (a tenth, for smaller sets) for validation, the official test set for testing.
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass, field

import torch
from torch import Tensor

from ..errors import FixptError
from .fields import FieldData, split_masks

IMAGE_SETS = ("digits", "cifar10")


@dataclass
class MaskedPixelsDataConfig:
    images: str = field(default="digits", metadata={"choices": IMAGE_SETS, "help": "digits (bundled, offline) or cifar10 (from the data root)"})
    mask_ratio: float = field(default=0.75, metadata={"min": 0, "below": 1, "help": "fraction of pixels blacked out"})
    mask_seed: int = field(default=0, metadata={"min": 0, "help": "seed of the fixed masks"})
    data_root: str = field(default="", metadata={"location": True, "help": "folder holding cifar10/cifar-10-batches-py (default: $FIXPT_DATA, else ~/.cache/fixpt)"})

    def validate(self) -> None:
        if not 0.0 <= self.mask_ratio < 1.0:
            raise FixptError(f"mask_ratio={self.mask_ratio} must lie in [0, 1)")


def load_digits_images() -> Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)


def load_cifar10(root: str) -> tuple[Tensor, Tensor]:
    """Train and test images ``(N, 3, 32, 32)`` in [0, 1] from ``<root>/cifar10``, offline."""
    from torchvision.datasets import CIFAR10

    from .planetoid import data_root
    from .safe_pickle import check_pickle

    folder = data_root(root) / "cifar10"
    batches = folder / "cifar-10-batches-py"
    for f in sorted(batches.glob("*_batch*")) + sorted(batches.glob("batches.meta")):
        check_pickle(f, encoding="latin1")  # torchvision unpickles them (after its MD5 check): refuse any that runs code
    try:
        train, test = (CIFAR10(str(folder), train=t, download=False) for t in (True, False))
    except (RuntimeError, OSError):  # torchvision's "not found or corrupted", or a missing folder
        raise FixptError(f"CIFAR-10 not found in {folder}: put the official cifar-10-batches-py folder there "
                         "(https://www.cs.toronto.edu/~kriz/cifar.html), or use --images digits") from None
    as_tensor = lambda d: torch.tensor(d.data).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return as_tensor(train), as_tensor(test)


def fixed_masks(shape: tuple[int, ...], ratio: float, seed: int) -> Tensor:
    """Keep-masks ``(N, 1, H, W)``: exactly ``round(ratio * H * W)`` pixels of each image are 0."""
    n, _, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    order = torch.rand(n, h * w, generator=gen).argsort(dim=1)
    keep = torch.ones(n, h * w)
    keep.scatter_(1, order[:, : round(ratio * h * w)], 0.0)
    return keep.view(n, 1, h, w)


@functools.lru_cache(maxsize=4)
def _load(key: tuple) -> FieldData:
    cfg = MaskedPixelsDataConfig(*key)
    if cfg.images == "digits":
        y = load_digits_images()
        train, val, test = split_masks(len(y))
    else:
        y_train, y_test = load_cifar10(cfg.data_root)
        y = torch.cat((y_train, y_test))
        idx = torch.arange(len(y))
        n_train = len(y_train) - min(5000, len(y_train) // 10)
        train, val, test = idx < n_train, (idx >= n_train) & (idx < len(y_train)), idx >= len(y_train)
    x = y * fixed_masks(tuple(y.shape), cfg.mask_ratio, cfg.mask_seed)
    return FieldData(x, y, train, val, test)


def load_masked_pixels(cfg: MaskedPixelsDataConfig) -> FieldData:
    return _load(astuple(cfg))
