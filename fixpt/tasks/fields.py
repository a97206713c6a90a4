"""The field tasks of the transformer families (``vit``, ``anie``): Navier-Stokes and masked pixels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..data.fields import FieldShape, NavierStokesDataConfig, load_navier_stokes
from ..data.images import MaskedPixelsDataConfig, load_masked_pixels
from ..registry import register_task
from ..training.config import FieldTrainConfig
from .base import InputSpec, Metric, Task


@register_task
class FieldRegression(Task):
    """Field-to-field regression on a grid (the Navier-Stokes task, :mod:`fixpt.data.fields`): MSE loss,
    scored by the MSE (lower is better). The models iterate on their token embedding."""

    name = "navier-stokes"
    data_config = NavierStokesDataConfig
    train_config = FieldTrainConfig
    minibatches = True
    metric = Metric("mse", higher_is_better=False)
    iterate_in = "tokens"

    def load(self, data_config):
        return load_navier_stokes(data_config)

    def input_spec(self, data) -> InputSpec:
        return InputSpec(FieldShape(data.x.shape[1], data.x.shape[-1], self.iterate_in), data.y.shape[1])

    def loss(self, out: Tensor, data, split: str = "train") -> Tensor:
        mask = getattr(data, f"{split}_mask")
        return F.mse_loss(out[mask], data.y[mask])

    def score(self, out: Tensor, data, split: str, metric: Metric) -> float:
        return float(self.loss(out, data, split))


@register_task
class MaskedPixels(FieldRegression):
    r"""Masked-pixel reconstruction (paper, Table 3): the image with 75 % of its pixels blacked out in,
    the whole image out, MSE. Models iterate in pixel space, :math:`x_{i+1} = (1 - \lambda) T(x_i) + \lambda x_i`
    from the masked image, and the loss is taken on the last iterate (:mod:`fixpt.data.images`)."""

    name = "masked-pixels"
    data_config = MaskedPixelsDataConfig
    iterate_in = "pixels"

    def load(self, data_config):
        return load_masked_pixels(data_config)
