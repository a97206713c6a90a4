r"""The field tasks of the transformer families (``vit``, ``anie``): Navier-Stokes (FNO's protocol, t = 1..10
-> 11..20), ``ns-initial`` (ANIE's: t = 0 -> ten times to t = 50) and masked pixels.

The Navier-Stokes tasks score three predictors that need no training beside every model (``metrics.json``'s
``references``, rows of ``fixpt report``), so a table shows which regime its models are in:

- ``zero``: :math:`\hat y = 0`;
- ``per-pixel mean``: :math:`\hat y = \bar y`, the mean target of the training split, per channel and pixel;
- ``persistence``: every target frame predicted by the last input frame (ns-initial: the t = 0 field).

They also record the test score's spread over test batches of the one trained model (the paper's ±, ANIE's
authors' protocol), beside the spread over seeds that ``fixpt report`` shows by default: the test split in
its stored order cut into batches of ``B`` = the run's ``--batch-size`` (32, the authors' size, when the run
trained full-batch), each batch run through the model on its own and scored, :math:`s_b`. ``metrics.json``
gets ``spread_over_test_batches``: ``<metric>_mean`` (:math:`\bar s`, the unweighted mean of the :math:`s_b`),
``<metric>_std`` (:math:`\sqrt{\sum_b (s_b - \bar s)^2 / n_b}`, numpy's default ``ddof = 0``; the authors'
code does not say which), ``batches`` (:math:`n_b`) and ``batch_size`` (:math:`B`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.fields import FieldShape, NavierStokesDataConfig, load_navier_stokes
from ..data.images import MaskedPixelsDataConfig, load_masked_pixels
from ..data.ns_initial import NSInitialDataConfig, load_ns_initial
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

    references = ("zero", "per-pixel mean", "persistence")

    authors_batch_size = 32  # the test batch size of test_batch_spread for a run trained full-batch

    def test_batch_spread(self, model, data, metric: Metric, batch_size: int) -> dict:
        """The test score of each batch of ``batch_size`` test samples (in stored order), their mean and std (module docs)."""
        size = batch_size or self.authors_batch_size
        index = data.test_mask.nonzero().flatten()
        scores = []
        model.eval()
        with torch.no_grad():
            for i in range(0, len(index), size):
                part = data.subset(index[i:i + size])
                scores.append(self.score(model(part), part, "test", metric))
        if not scores:
            return {}
        t = torch.tensor(scores, dtype=torch.float64)
        m = metric.name
        return {"spread_over_test_batches": {f"{m}_mean": float(t.mean()), f"{m}_std": float(t.std(correction=0)),
                                      "batches": len(scores), "batch_size": size}}

    def reference_scores(self, data, metric: Metric) -> dict[str, dict[str, float]]:
        """Each of :attr:`references` scored by :meth:`score` on the validation and test splits."""
        mean = data.y[data.train_mask].mean(0)
        scores: dict[str, dict[str, float]] = {name: {} for name in self.references}
        with torch.no_grad():
            for split in ("val", "test"):
                part = data.subset(getattr(data, f"{split}_mask").nonzero().flatten())
                guesses = {"zero": torch.zeros_like(part.y), "per-pixel mean": mean.expand_as(part.y),
                           "persistence": part.x[:, -1:].expand_as(part.y)}
                for name in self.references:
                    scores[name][f"{split}_{metric.name}"] = self.score(guesses[name], part, split, metric)
        return scores


@register_task
class NSInitial(FieldRegression):
    """ANIE's Navier-Stokes task (:mod:`fixpt.data.ns_initial`): the t = 0 vorticity in, the trajectory at
    t = 0, 5, 11, ..., 50 out, MSE."""

    name = "ns-initial"
    data_config = NSInitialDataConfig

    def load(self, data_config):
        return load_ns_initial(data_config)


@register_task
class MaskedPixels(FieldRegression):
    r"""Masked-pixel reconstruction (paper, Table 3): the image with 75 % of its pixels blacked out in,
    the whole image out, MSE. Models iterate in pixel space, :math:`x_{i+1} = (1 - \lambda) T(x_i) + \lambda x_i`
    from the masked image, and the loss is taken on the last iterate (:mod:`fixpt.data.images`)."""

    name = "masked-pixels"
    data_config = MaskedPixelsDataConfig
    iterate_in = "pixels"
    references = ()  # not a Navier-Stokes task

    def load(self, data_config):
        return load_masked_pixels(data_config)
