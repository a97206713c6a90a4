"""Tasks: how a registered model's data is loaded, scored and split.

A model's registry entry names its task; ``train``, ``iterate`` and ``check-contraction`` only
talk to the task, never to a data set directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.graph import GraphDataConfig, load_graph
from .errors import FixptError


class NodeClassification:
    """Full-graph node classification on the standard split, scored by accuracy, or by macro F1
    where the data set says so (``data.metric = "f1"``: LRGB PascalVOC-SP, see :mod:`fixpt.data.lrgb`)."""

    name = "node-classification"
    data_config = GraphDataConfig
    trains = True

    def metric_of(self, data) -> str:
        return getattr(data, "metric", "accuracy")

    def load(self, cfg: GraphDataConfig):
        return load_graph(cfg)

    def dims(self, data) -> tuple[int, int]:
        return data.num_features, int(data.num_classes)

    def loss(self, out: Tensor, data, split: str = "train") -> Tensor:
        mask = getattr(data, f"{split}_mask")
        return F.cross_entropy(out[mask], data.y[mask])

    def score(self, out: Tensor, data, split: str) -> float:
        mask = getattr(data, f"{split}_mask")
        pred, target = out[mask].argmax(-1), data.y[mask]
        if self.metric_of(data) == "f1":
            return macro_f1(pred, target, out.shape[-1])
        return float((pred == target).float().mean())


def macro_f1(pred: Tensor, target: Tensor, num_classes: int) -> float:
    r"""Macro-averaged F1 over the classes present in ``target`` or ``pred`` (scikit-learn's
    ``f1_score(average="macro")``, the LRGB metric): :math:`F_1^c = 2TP_c / (2TP_c + FP_c + FN_c)`."""
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = cm.diagonal().double()
    fp, fn = cm.sum(0).double() - tp, cm.sum(1).double() - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return float(f1[present].mean()) if present.any() else 0.0


class FieldRegression:
    """Field-to-field regression on a grid (the Navier-Stokes task, :mod:`fixpt.data.fields`): MSE
    loss, scored by the test MSE (lower is better). ``dims`` is ``(FieldDims, out_channels)``."""

    name = "navier-stokes"
    trains = True
    higher_is_better = False
    iterate_in = "tokens"  # the models iterate on their token embedding

    @property
    def train_config(self):
        from .train import FieldTrainConfig

        return FieldTrainConfig

    @property
    def data_config(self):
        from .data.fields import NavierStokesDataConfig

        return NavierStokesDataConfig

    def metric_of(self, data) -> str:
        return "mse"

    def load(self, cfg):
        from .data.fields import load_navier_stokes

        return load_navier_stokes(cfg)

    def dims(self, data) -> tuple:
        from .data.fields import FieldDims

        return FieldDims(data.x.shape[1], data.x.shape[-1], self.iterate_in), data.y.shape[1]

    def loss(self, out: Tensor, data, split: str = "train") -> Tensor:
        mask = getattr(data, f"{split}_mask")
        return F.mse_loss(out[mask], data.y[mask])

    def score(self, out: Tensor, data, split: str) -> float:
        return float(self.loss(out, data, split))


class MaskedPixels(FieldRegression):
    r"""Masked-pixel reconstruction (paper, Table 3): the image with 75 % of its pixels blacked out in,
    the whole image out, MSE. Models iterate in pixel space, :math:`x_{i+1} = (1 - \lambda) T(x_i) + \lambda x_i`
    from the masked image, and the loss is taken on the last iterate (:mod:`fixpt.data.images`)."""

    name = "masked-pixels"
    iterate_in = "pixels"

    @property
    def data_config(self):
        from .data.images import MaskedPixelsDataConfig

        return MaskedPixelsDataConfig

    def load(self, cfg):
        from .data.images import load_masked_pixels

        return load_masked_pixels(cfg)


class StructureRecycling:
    """Predicted structures scored per recycle against a reference (:mod:`fixpt.recycle`). Nothing is
    trained: the model's ``run`` does the work, and the task's ``run_config`` replaces the train config."""

    name = "structure-recycling"
    trains = False

    @property
    def data_config(self):
        from .recycle.sweep_point import RecycleDataConfig

        return RecycleDataConfig

    @property
    def run_config(self):
        from .recycle.sweep_point import RecycleScoreConfig

        return RecycleScoreConfig


class ImageGeneration:
    """Unconditional image generation by denoising diffusion (:mod:`fixpt.diffusion`): trained by its
    own step-based loop (``fit``), scored by the area under the per-timestep test loss (lower is
    better), the quality score and FID."""

    name = "image-generation"
    trains = True
    higher_is_better = False

    @property
    def data_config(self):
        from .diffusion.data import ImageGenerationDataConfig

        return ImageGenerationDataConfig

    @property
    def train_config(self):
        from .diffusion.train_loop import DDPMTrainConfig

        return DDPMTrainConfig

    @property
    def fit(self):
        from .diffusion.train_loop import train_ddpm

        return train_ddpm

    def metric_of(self, data) -> str:
        return "loss_area"

    def load(self, cfg):
        from .diffusion.data import load_images

        return load_images(cfg)

    def dims(self, data) -> tuple:
        return data.shape, None


TASKS = {t.name: t for t in (NodeClassification(), FieldRegression(), MaskedPixels(), StructureRecycling(), ImageGeneration())}


def get_task(name: str):
    if name not in TASKS:
        raise FixptError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def resolve_device(device: str) -> torch.device:
    """The one device decision: ``auto`` is CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise FixptError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise FixptError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)
