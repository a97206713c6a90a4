"""Every registered model gets the same tests for free: train a step, save, load, and (when it
iterates) the encode / step / decode fixed-point view."""

import pytest
import torch
from torch.nn.utils import parametrize

import fixpt
from fixpt.train import build, load_trained, train

SMALL_GRAPH = {"dataset": "csbm", "csbm_nodes": 120, "csbm_classes": 3, "csbm_features": 8}
SMALL_MODEL = {"hidden": 16, "heads": 4}


def small_cfg(name):
    valid = {f for f in fixpt.get_spec(name).config.__dataclass_fields__}
    return {k: v for k, v in SMALL_MODEL.items() if k in valid}


GRAPH_MODELS = [n for n in fixpt.list_models() if fixpt.get_spec(n).task == "node-classification"]  # the others: own test files


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_forward_backward_and_roundtrip(name, tmp_path, device):
    torch.manual_seed(0)
    spec, task, model, data, _, _ = build(name, small_cfg(name), SMALL_GRAPH, device)
    out = model(data)
    assert out.shape == (data.num_nodes, data.num_classes) and torch.isfinite(out).all()
    task.loss(out, data).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    metrics = train(name, small_cfg(name), SMALL_GRAPH, {"epochs": 3}, out=tmp_path, device=str(device))
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and (tmp_path / "metrics.json").exists()
    trained = load_trained(tmp_path / "ckpt.pt", device=str(device))
    loaded, data2, ckpt = trained.model, trained.data, trained.checkpoint
    assert ckpt["model"] == name and ckpt["data"]["csbm_nodes"] == 120
    torch.manual_seed(1)
    _, _, fresh, _, _, _ = build(name, small_cfg(name), SMALL_GRAPH, device)
    fresh.load_state_dict(ckpt["state_dict"])
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(data2), fresh(data2), atol=1e-6)


@pytest.mark.parametrize("name", [n for n in GRAPH_MODELS if fixpt.get_spec(n).view is not None])
def test_fixed_point_view(name, device):
    torch.manual_seed(0)
    _, _, model, data, _, _ = build(name, small_cfg(name), SMALL_GRAPH, device)
    model.eval()
    with torch.no_grad():
        f = model.encode(data)
        Pz = model.step(f, f, data)
        assert Pz.shape == f.shape
        assert model.decode(Pz, data).shape == (data.num_nodes, data.num_classes)
    opts = model.solver_options()
    assert {"method", "alpha", "tol", "max_iter", "batched"} <= set(opts)


@pytest.mark.parametrize("backbone", ["gcn", "sage"])
def test_contractive_pign_is_certified_below_gamma(backbone):
    torch.manual_seed(0)
    _, _, model, data, _, _ = build("pign", {"backbone": backbone, "contractive": True, "gamma": 0.7, "hidden": 16}, SMALL_GRAPH, "cpu")
    bound, why = model.certified_lipschitz(data)
    assert bound is not None and bound <= 0.7 * (1 + 1e-4), why
    model.eval()
    with torch.no_grad():
        f = model.encode(data)
    with parametrize.cached():
        local = fixpt.lipschitz(lambda z: model.step(z, f, data), f, iters=200)
    assert float(local) <= bound


def test_pign_gradient_modes_agree_at_the_fixed_point():
    """On a contractive PIGN solved to tight tolerance, unroll and implicit gradients coincide."""
    grads = {}
    for grad in ("unroll", "implicit"):
        torch.manual_seed(0)
        cfg = {"hidden": 16, "contractive": True, "gamma": 0.5, "grad": grad, "tol": 1e-7, "max_iter": 200, "dropout": 0.0}
        _, task, model, data, _, _ = build("pign", cfg, SMALL_GRAPH, "cpu")
        model = model.double()
        data.x = data.x.double()
        task.loss(model(data), data).backward()
        grads[grad] = torch.cat([p.grad.flatten() for p in model.parameters()])
    diff = (grads["unroll"] - grads["implicit"]).norm() / grads["unroll"].norm()
    assert diff < 1e-5


def test_anderson_reaches_picards_fixed_point_in_fewer_evaluations(tmp_path):
    train("pign", {"hidden": 16, "max_iter": 10}, SMALL_GRAPH, {"epochs": 30}, out=tmp_path, device="cpu")
    trained = load_trained(tmp_path / "ckpt.pt", device="cpu")
    model, data = trained.model, trained.data
    tol = 1e-6
    with torch.no_grad():
        f = model.encode(data)
        P = lambda z: model.step(z, f, data)  # noqa: E731
        pic = fixpt.solve(P, f, method="picard", alpha=0.5, tol=tol, max_iter=1000, batched=False)
        anders = fixpt.solve(P, f, method="anderson", alpha=0.5, tol=tol, max_iter=1000, batched=False)
    assert pic.converged and anders.converged
    # both are within the Banach-style error of the tolerance: compare relative to the solution size
    assert float((pic.z - anders.z).norm() / pic.z.norm()) < 20 * tol
    assert anders.n_evals < pic.n_evals


@pytest.mark.parametrize("cfg", [{"backbone": "gcn"}, {"backbone": "sage", "contractive": True}])
def test_propagation_cache_never_outlives_its_graph(cfg):
    """Blocks cache the normalised adjacency for one solve; a forward on another graph recomputes it."""
    torch.manual_seed(0)
    _, _, model, graph_a, _, _ = build("pign", {**cfg, "hidden": 16}, SMALL_GRAPH, "cpu")
    _, _, _, graph_b, _, _ = build("pign", {**cfg, "hidden": 16}, {**SMALL_GRAPH, "csbm_seed": 7}, "cpu")
    model.eval()
    with torch.no_grad():
        model(graph_a)
        after_a = model(graph_b)
        _, _, fresh, _, _, _ = build("pign", {**cfg, "hidden": 16}, SMALL_GRAPH, "cpu")
        fresh.load_state_dict(model.state_dict())
        fresh.eval()
        assert torch.allclose(after_a, fresh(graph_b), atol=1e-6)


def test_untrained_registry_entries_refuse_training():
    with pytest.raises(fixpt.FixptError, match="not trained.*fixpt sweep"):
        build("alphafold-recycle", {}, {}, torch.device("cpu"))
    with pytest.raises(fixpt.FixptError, match="not trained.*fixpt recycle"):
        train("alphafold-recycle", {}, {}, {})


def test_batch_size_is_for_sample_tasks():
    with pytest.raises(fixpt.FixptError, match="batch_size applies to tasks with independent samples"):
        train("pign", {"hidden": 8}, {"csbm_nodes": 60}, {"epochs": 1, "batch_size": 4})


def test_an_empty_validation_split_is_one_clear_error():
    """60 nodes of 4 classes: the 20 training nodes per class take them all, and nothing is left to validate on."""
    with pytest.raises(fixpt.FixptError, match="val_accuracy is NaN at epoch 1: the validation split is empty"):
        train("gnn", {"hidden": 8}, {"csbm_nodes": 60}, {"epochs": 2}, device="cpu")
