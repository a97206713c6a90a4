"""Images for diffusion training, scaled to [-1, 1] (the range DDPM's sampler clips to).

Sources are those of the masked-pixel task (:mod:`fixpt.data.images`): scikit-learn's bundled
8 x 8 digits (1797 real images, offline; split 2/3 : 1/6 : 1/6 in scikit-learn's order) and
CIFAR-10 from ``<data root>/cifar10`` (last 5000 training images for validation, the official
test set for testing). ``resolution`` > 0 resizes (bilinear, antialiased) to that side, e.g. to
give the paper-size UNet the 16 x 16 it needs at least.
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.fields import split_masks
from ..data.images import IMAGE_SETS, load_cifar10, load_digits_images
from ..errors import FixptError


@dataclass
class ImageGenerationDataConfig:
    images: str = field(default="digits", metadata={"choices": IMAGE_SETS, "help": "digits (bundled, offline) or cifar10 (from the data root)"})
    resolution: int = field(default=0, metadata={"min": 0, "help": "resize images to this side (0: native, 8 for digits, 32 for CIFAR-10)"})
    data_root: str = field(default="", metadata={"location": True, "help": "folder holding cifar10/cifar-10-batches-py (default: $FIXPT_DATA, else ~/.cache/fixpt)"})

    def validate(self) -> None:
        if self.resolution < 0:
            raise FixptError(f"resolution={self.resolution} must be >= 0 (0: the images' own size)")


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` in [-1, 1] per split; ``labels`` are the digit classes where known."""

    train: Tensor
    val: Tensor
    test: Tensor
    labels: dict[str, Tensor] = field(default_factory=dict)
    name: str = "digits"

    @property
    def shape(self) -> tuple[int, int]:
        """(channels, side)"""
        return self.train.shape[1], self.train.shape[-1]

    def to(self, device) -> "ImageSet":
        return self  # batches are moved to the device as they are drawn


def digit_labels() -> Tensor:
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().target, dtype=torch.long)


@functools.lru_cache(maxsize=4)
def _load(key: tuple) -> ImageSet:
    cfg = ImageGenerationDataConfig(*key)
    if cfg.images == "digits":
        x, y = load_digits_images(), digit_labels()
        masks = split_masks(len(x))
        splits = [x[m] for m in masks]
        labels = dict(zip(("train", "val", "test"), (y[m] for m in masks)))
    else:
        train, test = load_cifar10(cfg.data_root)
        n_val = min(5000, len(train) // 10)
        splits, labels = [train[:-n_val], train[-n_val:], test], {}
    if cfg.resolution:
        splits = [F.interpolate(s, size=(cfg.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
                  for s in splits]
    splits = [(2 * s - 1).contiguous() for s in splits]
    return ImageSet(*splits, labels=labels, name=cfg.images)


def load_images(cfg: ImageGenerationDataConfig) -> ImageSet:
    return _load(astuple(cfg))
