"""feature_dropout: the distribution of nn.Dropout, drawn on the non-zero entries only."""

import torch

from fixpt.models.dropout import FeatureDropout, feature_dropout


def bag_of_words(n=400, f=300, density=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < density).float() * torch.rand(n, f, generator=g)
    return x


def test_zeros_stay_zero_and_kept_entries_are_rescaled():
    torch.manual_seed(0)
    x = bag_of_words()
    out = feature_dropout(x, 0.3)
    assert (out[x == 0] == 0).all()
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.7)
    # each non-zero entry is kept with probability 1 - p: a binomial count within 5 sigma
    n = int((x != 0).sum())
    assert abs(int(kept.sum()) - 0.7 * n) <= 5 * (n * 0.3 * 0.7) ** 0.5


def test_same_mean_as_dropout_and_identity_in_eval():
    torch.manual_seed(1)
    x = bag_of_words(n=50, f=40, density=0.3)
    mean = torch.stack([feature_dropout(x, 0.5) for _ in range(4000)]).mean(0)
    assert torch.allclose(mean, x, atol=0.06)  # E[out] = x, as for nn.Dropout
    module = FeatureDropout(0.5).eval()
    assert module(x) is x
    assert feature_dropout(x, 0.0) is x


def test_falls_back_to_plain_dropout_when_a_gradient_is_needed():
    x = bag_of_words().requires_grad_()
    out = feature_dropout(x, 0.5)
    out.sum().backward()
    assert x.grad is not None and set(x.grad.unique().tolist()) <= {0.0, 2.0}
