"""Dropout of graph models: masks on the non-zero entries of sparse input features
(``dropout_nonzeros``, which :class:`Dropout` applies to a sparse matrix), and masks from random bits (``dropout``)."""

import torch

from fixpt.models.dropout import Dropout, InputLinear
from fixpt.models.kernels import Graph, SparseMatrix, dropout_nonzeros
from fixpt.models.kernels.csr import sparse_features
from fixpt.models.kernels.dropout import LANES, _InputProduct, dropout


def bag_of_words(n=400, f=300, density=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < density).float() * torch.rand(n, f, generator=g)
    return x


def dropout_features(x, p, training=True):
    """Input dropout as a fast model does it: the graph keeps sparse features as a sparse matrix, Dropout masks its non-zeros."""
    return Dropout(p, backend="fast").train(training)(Graph(torch.zeros(2, 0, dtype=torch.long), x.shape[0], x).x)


def test_zeros_stay_zero_and_kept_entries_are_rescaled():
    torch.manual_seed(0)
    x = bag_of_words()
    out = dropout_features(x, 0.3)
    assert isinstance(out, SparseMatrix)
    out = out.to_dense()
    assert (out[x == 0] == 0).all()
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.7)
    # each non-zero entry is kept with probability 1 - p: a binomial count within 5 sigma
    n = int((x != 0).sum())
    assert abs(int(kept.sum()) - 0.7 * n) <= 5 * (n * 0.3 * 0.7) ** 0.5


def test_same_mean_as_dropout_and_identity_in_eval():
    """E[out] = x as for nn.Dropout: 4000 draws at p = 0.5 put each mean within 0.06 (about 6 sigma
    for entries below 1); in evaluation, and at p = 0, the features pass unchanged; at p = 1 all drop."""
    torch.manual_seed(1)
    x = bag_of_words(n=50, f=40, density=0.09)
    mean = torch.stack([dropout_features(x, 0.5).to_dense() for _ in range(4000)]).mean(0)
    assert torch.allclose(mean, x, atol=0.06)
    assert torch.equal(dropout_features(x, 0.5, training=False).to_dense(), x)
    assert torch.equal(dropout_features(x, 0.0).to_dense(), x)
    assert torch.equal(dropout_features(x, 1.0).to_dense(), torch.zeros_like(x))
    layer = InputLinear(40, 8, dropout=0.5, backend="fast").eval()
    assert torch.allclose(layer(sparse_features(x)), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))  # a dense input: F.linear


def test_dense_or_differentiable_features_get_plain_dropout():
    x = torch.rand(50, 40) + 0.1  # no zeros: not sparse
    out = dropout_features(x, 0.5)
    assert isinstance(out, torch.Tensor) and set(((out != 0) * 1).unique().tolist()) <= {0, 1}
    assert torch.allclose(out[out != 0], 2 * x[out != 0])
    xg = bag_of_words().requires_grad_()
    out = dropout_features(xg, 0.5)
    assert isinstance(out, torch.Tensor)
    out.sum().backward()
    assert set(xg.grad.unique().tolist()) <= {0.0, 2.0}


def test_bit_dropout_keeps_the_asked_fraction_and_the_mean():
    """dropout (random-bit masks): keep probability round((1 - p) 2^16) / 2^16, E[out] = x exactly.
    Over 10^6 entries the kept fraction has std 5e-4, so 3e-3 is six standard deviations."""
    torch.manual_seed(0)
    x = torch.full((1000, 1000), 2.0)
    for p in (0.5, 0.3, 0.6):
        out = dropout(x, p)
        keep = round((1 - p) * LANES) / LANES
        kept = out != 0
        assert abs(float(kept.float().mean()) - keep) < 3e-3
        assert torch.allclose(out[kept], torch.tensor(2.0 / keep))  # kept entries scaled by 1 / keep
        assert abs(float(out.mean()) - 2.0) < 2e-2
    # independent entries: neighbouring lanes of one 64-bit word are uncorrelated
    m = (dropout(torch.ones(4_000_000), 0.5) != 0).float().view(-1, 4)
    corr = torch.corrcoef(m.t())
    assert (corr - torch.eye(4)).abs().max() < 5e-3


def test_bit_dropout_identity_cases_and_vmap():
    from torch.func import vmap

    x = torch.randn(7, 5)
    assert dropout(x, 0.0) is x and dropout(x, 0.5, training=False) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert torch.equal(Dropout(0.5, backend="fast").eval()(x), x)
    # under vmap with randomness="different" every batch entry draws its own mask
    out = vmap(lambda w: dropout(torch.ones(100, 100) * w, 0.5), randomness="different")(torch.ones(3))
    assert out.shape == (3, 100, 100) and not torch.equal(out[0], out[1])


def _graph_ops(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack += [nxt for nxt, _ in fn.next_functions]
    return {type(fn).__name__ for fn in seen}


def test_input_product_of_a_seed_batch_is_one_wide_product():
    """Seeds sharing dense features X: one product X [W_1; ...; W_S]^T, equal to the S products and their gradients."""
    from torch.func import jvp, vmap

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 30, dtype=torch.double, generator=g)
    W = torch.randn(4, 8, 30, dtype=torch.double, generator=g, requires_grad=True)
    out = vmap(lambda w: _InputProduct.apply(x, w))(W)
    torch.testing.assert_close(out, torch.stack([x @ w.T for w in W]))
    ops = _graph_ops(out)
    assert "MmBackward0" in ops and "BmmBackward0" not in ops  # the wide product, not S narrow ones
    up = torch.randn(out.shape, dtype=torch.double, generator=g)
    (out * up).sum().backward()
    torch.testing.assert_close(W.grad, torch.stack([up[i].T @ x for i in range(4)]))
    X = torch.randn(4, 50, 30, dtype=torch.double, generator=g)  # per-seed features (input dropout): batched products
    torch.testing.assert_close(vmap(_InputProduct.apply)(X, W.detach()), torch.stack([X[i] @ W[i].T for i in range(4)]))
    w0 = W[0].detach().clone().requires_grad_(True)
    small = (x[:6, :5].clone().requires_grad_(True), w0[:3, :5].detach().clone().requires_grad_(True))
    assert torch.autograd.gradcheck(_InputProduct.apply, small)  # the full Jacobian, so on small factors
    v = torch.randn(8, 30, dtype=torch.double, generator=g)
    _, tangent = jvp(lambda w: _InputProduct.apply(x, w), (w0.detach(),), (v,))
    torch.testing.assert_close(tangent, x @ v.T)
