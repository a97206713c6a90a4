"""Iterative ViT variants and ANIE on generated Navier-Stokes data: shapes, the iteration they
compute, the token layout, training, and the fixed-point commands on their checkpoints."""

import json

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.navier_stokes import NavierStokesConfig, generate
from fixpt.tasks.base import Metric
from fixpt.train import build, load_trained, train

runner = CliRunner()
VARIANTS = ["vit", "vit-small", "vit-parallel", "vit-3d"]


@pytest.fixture(scope="module")
def ns_file(tmp_path_factory):
    """12 trajectories, 4 frames at 16 x 16: a real (tiny) solution of the equations."""
    return str(generate(NavierStokesConfig(n_samples=12, resolution=16, fine=16, t_final=4, dt=1e-3), tmp_path_factory.mktemp("ns")))


def data_cfg(path):
    return {"data_file": path, "in_frames": 2, "out_frames": 2}


@pytest.mark.parametrize("variant", VARIANTS)
def test_vit_iterates_its_encoder_n_times(ns_file, variant):
    torch.manual_seed(0)
    _, task, model, data, _, _ = build("vit", {"variant": variant, "n_iter": 3, "alpha": 0.3}, data_cfg(ns_file), torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        out = model(data)
        f = model.encode(data)
        z = f
        for _ in range(3):  # z_{k+1} = a z_k + (1 - a)(T(z_k) + f), the paper's Algorithm 2
            z = 0.3 * z + 0.7 * (model.encoder(z) + f)
        expected = model.decode(z, data)
    assert out.shape == data.y.shape == (12, 2, 16, 16)
    assert model.last_solution.n_iter == 3
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("heads, blocks", [(1, 1), (4, 1), (2, 2), (4, 4)])
def test_anie_sizes_and_iterations(ns_file, heads, blocks):
    _, _, model, data, _, _ = build("anie", {"heads": heads, "blocks": blocks, "n_iter": 4}, data_cfg(ns_file), torch.device("cpu"))
    attn = [m for m in model.integral.modules() if type(m).__name__ == "Attention"]
    assert len(attn) == blocks and all(a.num_heads == heads for a in attn)
    model.eval()
    with torch.no_grad():
        assert model(data).shape == (12, 2, 16, 16)
    assert model.last_solution.n_iter == 4


@pytest.mark.parametrize("variant", ["vit", "vit-3d"])
def test_each_token_decodes_to_its_own_patch(ns_file, variant):
    """Changing one token changes exactly its patch (vit: all frames; vit-3d: its tubelet's frames)."""
    _, _, model, data, _, _ = build("vit", {"variant": variant}, data_cfg(ns_file), torch.device("cpu"))
    tokens = model.tokens
    z = torch.randn(1, tokens.pos.shape[1], tokens.pos.shape[2])
    base = tokens.decode(z)
    z2 = z.clone()
    k = 5  # token 5: spatial patch (row 1, col 1) of a 4 x 4 patch grid on 16 x 16, first tubelet for vit-3d
    z2[0, k] += 1.0
    changed = (tokens.decode(z2) - base).abs().sum(0) > 0  # (frames, s, s)
    expected = torch.zeros_like(changed)
    expected[:, 4:8, 4:8] = True
    if variant == "vit-3d":
        expected[1:] = expected[1:] & False  # tubelet 2 over 2 frames: token 5 belongs to frames 0-1; 2 frames total
        expected[:2, 4:8, 4:8] = True
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("iterate_on", ["tokens", "pixels"])
def test_pooled_head_is_one_linear_map_of_the_token_mean(ns_file, iterate_on):
    """--head pooled (vit-pytorch's head on fields): the output is W mean_i(z_i) + b reshaped, so it ignores the
    tokens' order; the per-token head is gone (no unused weights) and every weight gets a gradient."""
    torch.manual_seed(0)
    _, _, model, data, _, _ = build("vit", {"head": "pooled", "iterate_on": iterate_on, "n_iter": 2}, data_cfg(ns_file),
                                    torch.device("cpu"))
    head = model.pooled_head
    assert model.tokens.head is None
    z = torch.randn(3, 16, 64)  # 16 tokens of width 64 (small: patch 4 on 16 x 16)
    W, b = head.proj.weight, head.proj.bias
    expected = (z.mean(1) @ W.T + b).view(3, 2, 16, 16)
    assert torch.allclose(model.to_field(z), expected, atol=1e-6)
    assert torch.allclose(model.to_field(z[:, torch.randperm(16)]), expected, atol=1e-5)
    # the per-token head, by contrast, depends on where each token sits
    _, _, plain, _, _, _ = build("vit", {"iterate_on": iterate_on}, data_cfg(ns_file), torch.device("cpu"))
    assert not torch.allclose(plain.to_field(z[:, torch.randperm(16)]), plain.to_field(z), atol=1e-3)
    model.train()
    model(data).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_training_lowers_the_error(ns_file):
    torch.manual_seed(0)
    metrics = train("vit", {"variant": "vit-small", "n_iter": 2}, data_cfg(ns_file), {"epochs": 30, "batch_size": 4, "patience": 30})
    _, task, model, data, _, _ = build("vit", {"variant": "vit-small", "n_iter": 2}, data_cfg(ns_file), torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        untrained = task.score(model(data), data, "test", task.metric)
    assert metrics["test_mse"] < 0.5 * untrained
    assert metrics["n_iter"] == 2


@pytest.mark.parametrize("model", ["vit", "anie"])
def test_iterate_and_check_contraction_on_a_checkpoint(ns_file, tmp_path, model):
    res = runner.invoke(app, ["train", model, "--task", "navier-stokes", "--data-file", ns_file, "--in-frames", "2",
                              "--out-frames", "2", "--n-iter", "3", "--epochs", "2", "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["iterate", str(tmp_path / "run" / "ckpt.pt"), "--max-iter", "6", "--json"])
    assert res.exit_code == (0 if json.loads(res.stdout)["converged_at"] else 1), res.output  # 1: not converged
    rows = json.loads(res.stdout)["iterations"]
    assert len(rows) == 7 and all(r["mse"] is not None for r in rows)
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "run" / "ckpt.pt"), "--samples", "3", "--iters", "20", "--json"])
    assert res.exit_code in (0, 1), res.output  # 1: not contractive, a legitimate answer for a 2-epoch model
    report = json.loads(res.stdout)
    assert report["certified_bound"] is None and "no certified bound" in report["certified_reason"]
    assert 0 < report["local_norm"]["min"] <= report["local_norm"]["median"] <= report["local_norm"]["max"]
    assert report["empirical_ratio"] > 0


def test_bad_data_and_options_one_line(ns_file, tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "fixpt-navier-stokes", "params": {}, "vorticity": torch.zeros(4, 16, 16)}, bad)
    for args, needle in [(["--data-file", str(bad)], "shape (4, 16, 16)"),
                         (["--data-file", str(tmp_path / "missing.pt")], "does not exist"),
                         (["--data-file", ns_file, "--variant", "vit-4d"], "must be one of"),
                         (["--data-file", ns_file, "--in-frames", "3", "--out-frames", "3"], "4 frames")]:
        res = runner.invoke(app, ["train", "vit", *args, "--epochs", "1"])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output


def test_anie_authors_form_is_the_residual_iteration_with_a_final_image(ns_file):
    """residual, c = 0, k + 1 evaluations, the last undamped image: y <- y + (1 - a) T(y) k times, then y + T(y)."""
    torch.manual_seed(0)
    cfg = {"n_iter": 3, "alpha": 0.5, "residual": True, "free_term": "zero", "attention": "galerkin", "evaluations": "k+1",
           "output": "image"}
    _, _, model, data, _, _ = build("anie", cfg, data_cfg(ns_file), torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        out = model(data)
        y = model.encode(data)  # the start: the encoded input, though c = 0
        for _ in range(3):
            y = y + 0.5 * model.integral(y)
        expected = model.tokens.decode(y + model.integral(y))
    assert model.last_solution.n_iter == 3 and torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("evaluations, output, steps", [("k", "iterate", 4), ("k+1", "iterate", 5), ("k", "image", 3), ("k+1", "image", 4)])
def test_anie_evaluation_count(ns_file, evaluations, output, steps):
    """T is evaluated n_iter (k) or n_iter + 1 times in all; an image output takes the last of them."""
    _, _, model, data, _, _ = build("anie", {"n_iter": 4, "evaluations": evaluations, "output": output}, data_cfg(ns_file),
                                    torch.device("cpu"))
    calls = []
    model.integral.register_forward_hook(lambda *_: calls.append(1))
    model.eval()
    with torch.no_grad():
        model(data)
    assert model.last_solution.n_iter == steps and len(calls) == 4 + (evaluations == "k+1")


def test_anie_free_term_and_residual_switches(ns_file):
    _, _, model, data, _, _ = build("anie", {"free_term": "encoded", "residual": False}, data_cfg(ns_file), torch.device("cpu"))
    f, y = model.encode(data), torch.randn(12, model.tokens.centres.shape[0], 64)
    with torch.no_grad():
        t = model.integral(y)
        assert torch.allclose(model.step(y, f, data), f + t)
        model.cfg.residual, model.cfg.free_term = True, "zero"
        assert torch.allclose(model.step(y, f, data), y + t)


def test_galerkin_attention_against_its_formula():
    """Attn(x) = Q (K^T V) / n per head, heads concatenated (the authors' code: no LayerNorm on K and V, no output
    projection); W_q, W_k, W_v start as Xavier (gain 1e-2) + 1e-2 I with zero bias; blocks are post-norm."""
    from fixpt.models.galerkin import DIAGONAL, GalerkinAttention, PostNormBlock

    torch.manual_seed(0)
    att = GalerkinAttention(8, 2).eval()
    for w in att.qkv.weight.split(8):  # Xavier-uniform bound: gain * sqrt(6 / (fan_in + fan_out)) = 1e-2 * sqrt(6 / 16)
        off_diagonal = w - DIAGONAL * torch.eye(8)
        assert off_diagonal.abs().max() <= 1e-2 * (6 / 16) ** 0.5 and off_diagonal.abs().max() > 0
    assert torch.equal(att.qkv.bias, torch.zeros(24))
    with torch.no_grad():
        att.qkv.weight.normal_()  # a trained-looking weight, so that the formula is tested away from the identity
        att.qkv.bias.normal_()
    x = torch.randn(3, 5, 8)
    q, k, v = att.qkv(x).split(8, -1)
    heads = [q[..., sl] @ (k[..., sl].transpose(1, 2) @ v[..., sl]) / 5 for sl in (slice(0, 4), slice(4, 8))]
    assert torch.allclose(att(x), torch.cat(heads, -1), atol=1e-5)
    block = PostNormBlock(8, 2, 2.0).eval()
    mid = block.norm1(x + block.attn(x))
    assert torch.allclose(block(x), block.norm2(mid + block.mlp(mid)), atol=1e-6)
    assert isinstance(block.mlp[1], torch.nn.ReLU)


def test_attention_dropout_at_evaluation(ns_file):
    """The authors' F.dropout stays on in evaluation: repeated evaluations differ; off, they are identical."""
    outs = {}
    for at_eval in (True, False):
        torch.manual_seed(0)
        _, _, model, data, _, _ = build("anie", {"attention": "galerkin", "attn_dropout": 0.5, "dropout_at_eval": at_eval},
                                        data_cfg(ns_file), torch.device("cpu"))
        model.eval()
        with torch.no_grad():
            outs[at_eval] = (model(data), model(data))
    assert not torch.allclose(*outs[True]) and torch.equal(*outs[False])


def test_anie_form_options_checked(ns_file):
    for args, needle in [(["--n-iter", "1", "--output", "image"], "leaves no damped step"),
                         (["--attn-dropout", "0.5"], "apply to --attention galerkin")]:
        res = runner.invoke(app, ["train", "anie", "--data-file", ns_file, "--in-frames", "2", "--out-frames", "2", "--epochs", "1", *args])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output


def test_a_minibatched_epoch_evaluates_only_the_held_out_samples(ns_file, tmp_path):
    """Each epoch of a minibatched task evaluates the validation and test samples alone (the same scores as a
    forward over all the data), and metrics.json's training score is the checkpoint's, taken once at the end."""
    from fixpt.training.loop import SPLITS, evaluate, held_out

    torch.manual_seed(0)
    _, task, model, data, _, _ = build("vit", {"variant": "vit-small"}, data_cfg(ns_file), torch.device("cpu"))
    metric = Metric("mse", higher_is_better=False)
    index = data.train_mask.nonzero().flatten()
    part, splits = held_out(data, index)
    assert splits == ("val", "test") and len(part.x) == int((data.val_mask | data.test_mask).sum()) < len(data.x)
    full, held = evaluate(model, task, data, metric), evaluate(model, task, part, metric, splits)
    assert set(held) == {"val_loss", "val_mse", "test_mse"}
    for key in held:
        assert held[key] == pytest.approx(full[key], rel=1e-5)
    assert held_out(data, None) == (data, SPLITS)  # a full-batch task: one forward gives every split

    metrics = train("vit", {"variant": "vit-small"}, data_cfg(ns_file), {"epochs": 2, "batch_size": 4}, out=tmp_path, device="cpu")
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert "val_mse" in header and "test_mse" in header and "train_mse" not in header
    trained = load_trained(tmp_path / "ckpt.pt")
    again = evaluate(trained.model, trained.task, trained.data, metric)
    assert metrics["train_mse"] == pytest.approx(again["train_mse"], rel=1e-5)
