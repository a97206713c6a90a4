r"""What a trained DDPM is scored by.

- **Test loss per timestep** (paper, Figure 8 top): :math:`L(t) = E\|\epsilon - \epsilon_\theta(x_t, t)\|^2 / d`
  over the test images at ``n`` timesteps evenly spaced over 0..T-1, with one fixed noise draw
  (seeded), plotted against :math:`u = t / (T - 1) \in [0, 1]`; its **area**
  :math:`\int_0^1 L\, du` (trapezoid rule) is the number that compares models of different T.
- **FID** with torchmetrics' ``FrechetInceptionDistance``:
  :math:`\|\mu_r - \mu_g\|^2 + \mathrm{tr}(\Sigma_r + \Sigma_g - 2 (\Sigma_r \Sigma_g)^{1/2})` of feature
  statistics of real test images and samples. With ``--fid-weights`` the features are Inception-v3's
  (torch-fidelity's ``pt_inception-2015-12-05`` weights, read from that file, never downloaded):
  the published FID. Without them, on digits, the features are the hidden layer of the digits
  classifier below: ``fid_kind = "digits-classifier (not comparable with published FID)"``. The two are
  stored under different ``fid_kind`` labels and never reported as each other.
- **Quality score** (digits): the share of samples that a classifier trained on real digits labels with
  softmax confidence >= 0.9, beside the same share for real held-out digits (``quality_real``), and
  the entropy of the predicted classes in bits (``class_entropy``; log2 10 = 3.32 when all ten digits
  appear equally often, lower when samples collapse onto few digits).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import atomic_write
from ..errors import FixptError

CONFIDENCE = 0.9
PROXY_FID = "digits-classifier (not comparable with published FID)"
INCEPTION_FID = "inception-v3 (torch-fidelity weights)"


@torch.no_grad()
def timestep_losses(model, images: Tensor, n_points: int, *, seed: int = 0, batch: int = 512) -> tuple[list[int], list[float]]:
    """Mean noise-prediction MSE over ``images`` at ``n_points`` timesteps spread over 0..T-1."""
    T = model.timesteps
    ts = torch.linspace(0, T - 1, n_points).round().long().unique().tolist()
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=gen)
    losses = []
    for t in ts:
        total = 0.0
        for i in range(0, len(images), batch):
            x0, eps = images[i:i + batch].to(dev), noise[i:i + batch].to(dev)
            tt = torch.full((len(x0),), t, device=dev, dtype=torch.long)
            total += float(F.mse_loss(model(model.add_noise(x0, eps, tt), tt).float(), eps, reduction="sum"))
        losses.append(total / images.numel())
    return ts, losses


def loss_area(ts: list[int], losses: list[float], T: int) -> float:
    r""":math:`\int_0^1 L(u)\, du`, trapezoid rule over :math:`u = t / (T - 1)`."""
    u = [t / (T - 1) for t in ts]
    return sum((u[i + 1] - u[i]) * (losses[i] + losses[i + 1]) / 2 for i in range(len(u) - 1))


# ---------------------------------------------------------------- the digits classifier


class DigitsClassifier(nn.Module):
    """A small CNN on images in [-1, 1]; ``features`` (64 numbers) is the FID stand-in's feature space."""

    num_features = 64

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class _Features(nn.Module):
    """The classifier's feature layer as torchmetrics wants a custom extractor: images in, (N, d) out."""

    def __init__(self, clf: DigitsClassifier):
        super().__init__()
        self.clf, self.num_features = clf, clf.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.clf.features(x.float())


CLASSIFIER_RECIPE = 1  # bump when DigitsClassifier or _train_classifier changes: weights cached by another recipe are not read
CLASSIFIER_EPOCHS = 80


def _train_classifier(data, epochs: int) -> DigitsClassifier:
    """Seed 0, Adam at 1e-3, ``epochs`` passes over the training split in batches of 64, each shifted by up to a
    pixel (the test split's writers centre less)."""
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        clf = DigitsClassifier(data.shape[0])
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    x, y = data.train, data.labels["train"]
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            loss = F.cross_entropy(clf(torch.roll(x[b], (dx, dy), dims=(2, 3))), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval()


def classifier_cache_path(data, epochs: int) -> Path:
    """``$XDG_CACHE_HOME/fixpt/digits-classifier/<key>.pt``; the key hashes everything the weights depend on: the
    recipe, the epochs, torch's version and the training images and labels themselves."""
    from ..data.planetoid import cache_dir

    h = hashlib.sha256(f"recipe {CLASSIFIER_RECIPE} epochs {epochs} torch {torch.__version__}".encode())
    for t in (data.train, data.labels["train"]):
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return cache_dir() / "digits-classifier" / f"{h.hexdigest()[:24]}.pt"


def _read_cached(path: Path, clf: DigitsClassifier) -> bool:
    """Load the cached weights into ``clf``; False when there are none or they cannot be read (then they are rebuilt)."""
    try:
        clf.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        return False
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError):  # damaged or foreign
        return False
    return True


@functools.lru_cache(maxsize=2)
def _classifier(key: tuple, epochs: int) -> tuple[DigitsClassifier, float]:
    from .data import ImageGenerationDataConfig, load_images

    data = load_images(ImageGenerationDataConfig(*key))
    path = classifier_cache_path(data, epochs)
    with torch.random.fork_rng():  # the module's initial weights, about to be replaced, draw from no one's stream
        clf = DigitsClassifier(data.shape[0]).eval()
    if not _read_cached(path, clf):
        clf = _train_classifier(data, epochs)
        try:
            atomic_write(path, lambda tmp: torch.save(clf.state_dict(), tmp))
        except OSError:
            pass  # a read-only cache: train again next time, never fail the evaluation for it
    with torch.no_grad():
        accuracy = float((clf(data.test).argmax(1) == data.labels["test"]).float().mean())
    return clf, accuracy


def digits_classifier(data_cfg, epochs: int = CLASSIFIER_EPOCHS) -> tuple[DigitsClassifier, float]:
    """The classifier of digits images at this data config and its test accuracy: trained once (seed 0, on the
    training split), its weights cached on disk (:func:`classifier_cache_path`, written atomically; a damaged
    file is trained again), so later processes only read them."""
    from dataclasses import astuple

    return _classifier(astuple(data_cfg), epochs)


@torch.no_grad()
def quality_score(clf: DigitsClassifier, images: Tensor) -> dict:
    probs = torch.softmax(clf(images.float().cpu()), dim=1)
    confident = float((probs.max(1).values >= CONFIDENCE).float().mean())
    share = torch.bincount(probs.argmax(1), minlength=10).double() / len(images)
    entropy = float(-(share[share > 0] * share[share > 0].log2()).sum())
    return {"confident": confident, "class_entropy": entropy}


# ---------------------------------------------------------------- FID


def fid(real: Tensor, fake: Tensor, *, weights: str = "", clf: DigitsClassifier | None = None) -> tuple[float, str]:
    """(FID, kind) of two image sets in [-1, 1]: Inception features when ``weights`` names the file,
    else the digits classifier's features (``clf``)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FixptError(f"--fid-weights {weights}: no such file; give torch-fidelity's Inception weights "
                             "(pt_inception-2015-12-05-6726825d.pth) or leave the option out for the labelled stand-in")
        try:
            metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path),
                                              sync_on_compute=False)  # rank 0 alone evaluates: nothing to gather
        except ModuleNotFoundError as e:
            raise FixptError(f"Inception FID needs torch-fidelity ({e}); pip install 'fixpt[fid]'") from None
        except Exception as e:  # noqa: BLE001 - a wrong or damaged weights file
            raise FixptError(f"--fid-weights {weights} could not be loaded as Inception-v3 weights ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
        to_rgb = lambda x: ((x.float().cpu() + 1) / 2).expand(-1, 3, -1, -1)  # noqa: E731 - [0, 1] RGB, as normalize=True wants
        kind = INCEPTION_FID
    else:
        if clf is None:
            raise FixptError("FID without --fid-weights has a stand-in only for digits")
        metric = FrechetInceptionDistance(feature=_Features(clf), normalize=True, input_img_size=tuple(real.shape[1:]),
                                          sync_on_compute=False)  # rank 0 alone evaluates: nothing to gather
        to_rgb, kind = (lambda x: x.float().cpu()), PROXY_FID
    for i in range(0, len(real), 256):
        metric.update(to_rgb(real[i:i + 256]), real=True)
    for i in range(0, len(fake), 256):
        metric.update(to_rgb(fake[i:i + 256]), real=False)
    return float(metric.compute()), kind


# ---------------------------------------------------------------- everything at the end of training


def save_grid(images: Tensor, path: str | Path, nrow: int = 16) -> Path:
    """A PNG grid of images in [-1, 1], upscaled so 8 x 8 digits are visible."""
    from torchvision.utils import save_image

    from ..checkpoint import atomic_write

    side = images.shape[-1]
    scale = max(1, 32 // side)
    big = F.interpolate(images.float().cpu(), scale_factor=scale, mode="nearest") if scale > 1 else images.float().cpu()
    atomic_write(path, lambda tmp: save_image((big + 1) / 2, tmp, nrow=nrow, padding=2, pad_value=1.0, format="png"))
    return Path(path)


def evaluate_ddpm(model, data, data_cfg, tcfg, out: Path | None) -> dict:
    """Per-timestep test loss and its area; with ``tcfg.samples``: samples, their grid, quality and FID."""
    from .sampling import sample

    model.eval()
    ts, losses = timestep_losses(model, data.test, tcfg.eval_timesteps, seed=tcfg.seed)
    T = model.timesteps
    result = {"test_loss_area": loss_area(ts, losses, T),
              "loss_per_timestep": [[t / (T - 1), v] for t, v in zip(ts, losses)]}
    if not tcfg.samples:
        return result
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(tcfg.seed + 1)
    noise = torch.randn((tcfg.samples, *data.test.shape[1:]), generator=gen).to(dev)
    step_gen = torch.Generator(device=dev).manual_seed(tcfg.seed + 2)
    steps = tcfg.sample_steps or T
    fake = sample(model, noise, steps, generator=step_gen).cpu()
    result["sample_steps"] = steps
    if out is not None:
        save_grid(fake[:128], Path(out) / "samples.png")
    clf = None
    if data.name == "digits":
        clf, accuracy = digits_classifier(data_cfg)
        q, q_real = quality_score(clf, fake), quality_score(clf, data.test)
        result.update(quality=q["confident"], quality_real=q_real["confident"], class_entropy=q["class_entropy"],
                      class_entropy_real=q_real["class_entropy"], classifier_accuracy=accuracy)
    if tcfg.fid_weights or clf is not None:
        value, kind = fid(data.test, fake, weights=tcfg.fid_weights, clf=clf)
        result.update(fid=value, fid_kind=kind)
    else:
        result.update(fid=None, fid_kind="none: no --fid-weights and no stand-in for this data set")
    return result
