"""--block-init identity: each block starts as the graph's propagation scaled by gamma (dense operators), the PIGN
built so is a contraction of the predicted factor (dense Jacobian), and what cannot start so is refused."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import erdos_renyi_graph, to_dense_adj

from fixpt.errors import FixptError
from fixpt.models.blocks import block_lipschitz_bound, identity_init, make_block
from fixpt.train import train
from fixpt.training.build import load_trained

from cli_checks import one_line_error, run as cli
from test_state_norm import GRAPH, dense_local_norm, mean_aggregation

GAIN = 0.7


def graph(n: int = 40, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return erdos_renyi_graph(n, 0.15, directed=False)


def gcn_propagation(ei: torch.Tensor, n: int) -> torch.Tensor:
    """Dense A_hat = D_hat^-1/2 (A + I) D_hat^-1/2."""
    A = to_dense_adj(ei, max_num_nodes=n)[0].double() + torch.eye(n, dtype=torch.float64)
    d = A.sum(1).rsqrt()
    return d[:, None] * A * d[None, :]


@pytest.mark.parametrize("backbone, dense", [("sage", mean_aggregation), ("gcn", gcn_propagation)])
def test_identity_start_is_the_scaled_propagation(backbone, dense):
    n, d = 40, 8
    ei = graph(n)
    block = make_block(backbone, d)
    identity_init(block, GAIN)
    z = torch.randn(n, d)
    expected = GAIN * dense(ei, n) @ z.double()
    assert torch.allclose(block(z, ei).double(), expected, atol=1e-5)


@pytest.mark.parametrize("concat", [True, False])
def test_identity_start_makes_every_gat_head_an_attention_average_of_gain_z(concat):
    """Each head's output row is a convex combination (attention weights sum to 1) of gain * z over the
    neighbourhood: a state equal on every node comes back scaled by the gain, whatever the attention."""
    n, d, heads = 40, 8, 4
    ei = graph(n)
    block = make_block("gat", d, heads=heads, concat_heads=concat)
    identity_init(block, GAIN)
    block.eval()
    z = torch.randn(1, d).expand(n, d).contiguous()
    assert torch.allclose(block(z, ei), GAIN * z, atol=1e-5)
    varied = torch.randn(n, d)
    out = block(varied, ei)
    assert (out <= GAIN * varied.max(0).values + 1e-5).all() and (out >= GAIN * varied.min(0).values - 1e-5).all()


def test_identity_started_sage_pign_is_a_contraction_of_the_predicted_factor():
    """Mean aggregation with W_l = gamma I, W_r = 0: certified gamma in the degree norm, and the operator
    P(z) = ReLU(gamma M z) + f has dense local norm exactly gamma where the ReLU passes everything (f >= 0, so
    M z* >= 0), as at the start: D^1/2 M D^-1/2 is symmetric with Perron value 1."""
    from fixpt.models.pign import PIGN, PIGNConfig
    from fixpt.registry import TASKS

    cfg = PIGNConfig(backbone="sage", hidden=16, max_iter=200, tol=1e-7, gamma=0.8, block_init="identity")
    task = TASKS.get("node-classification")
    data = task.load(task.data_config(**GRAPH))
    spec = task.input_spec(data)
    torch.manual_seed(0)
    model = PIGN(cfg, spec.in_dim, spec.out_dim)
    bound, _ = block_lipschitz_bound(model.block, data.edge_index, data.num_nodes, "degree")
    assert bound == pytest.approx(0.8, rel=1e-4)
    local = dense_local_norm(model, data, model.state_scale(data, "degree"))
    assert local == pytest.approx(0.8, abs=1e-5)


def test_block_init_is_recorded_and_a_trained_model_reloads(tmp_path):
    out = tmp_path / "run"
    train("pign", {"backbone": "sage", "hidden": 16, "max_iter": 6, "block_init": "identity", "gamma": 0.8}, GRAPH,
          {"epochs": 2, "seed": 0}, out=out, device="cpu")
    trained = load_trained(out / "ckpt.pt", device="cpu")
    assert trained.checkpoint["config"]["block_init"] == "identity"
    stored = torch.load(out / "ckpt.pt", weights_only=False)["state_dict"]
    assert not torch.equal(stored["block.lin_l.weight"], 0.8 * torch.eye(16))  # training moved the block off its start
    assert torch.equal(trained.model.block.lin_l.weight, stored["block.lin_l.weight"])  # weights, not the start


def test_block_init_identity_refuses_what_cannot_start_so(tmp_path):
    from fixpt.models.pign import PIGNConfig

    with pytest.raises(FixptError, match="--contractive"):
        PIGNConfig(backbone="sage", block_init="identity", contractive=True).validate()
    with pytest.raises(FixptError, match="gcn, gat or sage"):
        PIGNConfig(backbone="pyg:GINConv", block_init="identity").validate()
    res = cli("train", "pign", "--block-init", "identity", "--contractive", "--dataset", "csbm", "--csbm-nodes", "60",
              "--out", tmp_path / "x")
    one_line_error(res, "--block-init identity", "--contractive")
    assert not (tmp_path / "x").exists()
