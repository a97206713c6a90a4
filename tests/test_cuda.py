"""CUDA-only checks (skipped cleanly without a GPU), and the error when CUDA is asked for but absent."""

import json

import pytest
import torch
from typer.testing import CliRunner

import fixpt
from fixpt.cli import app

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
runner = CliRunner()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_one_is_a_one_line_error(tmp_path):
    res = runner.invoke(app, ["train", "pign", "--epochs", "1", "--device", "cuda", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no CUDA device" in res.stderr and not (tmp_path / "ckpt.pt").exists()


@cuda
def test_solver_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(64, 64, generator=g)
    A = 0.9 * A / torch.linalg.matrix_norm(A, ord=2)
    b = torch.randn(8, 64, generator=g)
    for method in ("picard", "anderson"):
        cpu = fixpt.solve(lambda z: torch.tanh(z @ A.T) + b, torch.zeros_like(b), method=method, tol=1e-6)
        Ag, bg = A.cuda(), b.cuda()
        gpu = fixpt.solve(lambda z: torch.tanh(z @ Ag.T) + bg, torch.zeros_like(bg), method=method, tol=1e-6)
        assert gpu.z.is_cuda and gpu.n_iter == cpu.n_iter
        assert torch.allclose(gpu.z.cpu(), cpu.z, atol=1e-5)


@cuda
def test_train_iterate_check_on_cuda(tmp_path):
    args = ["--csbm-nodes", "300", "--hidden", "32", "--contractive", "--epochs", "20", "--out", str(tmp_path), "--device", "cuda"]
    res = runner.invoke(app, ["train", "pign", *args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["device"].startswith("cuda")
    res = runner.invoke(app, ["iterate", str(tmp_path / "ckpt.pt"), "--device", "cuda", "--json"])
    assert res.exit_code == (0 if json.loads(res.stdout)["converged_at"] else 1), res.output  # 1: not converged
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "ckpt.pt"), "--device", "cuda", "--json", "--require-certificate"])
    assert res.exit_code == 0 and json.loads(res.stdout)["verdict"] == "certified", res.output


@cuda
def test_navier_stokes_generator_on_cuda_matches_cpu():
    from fixpt.data.navier_stokes import forcing, gaussian_random_field, solve_vorticity

    w0 = gaussian_random_field(4, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = forcing(32, dtype=torch.float64)
    cpu = solve_vorticity(w0, f, 1e-3, 1.0, 1e-3)
    gpu = solve_vorticity(w0.cuda(), f.cuda(), 1e-3, 1.0, 1e-3)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-10)


@cuda
def test_vit_trains_with_bf16_autocast_on_cuda(tmp_path):
    from fixpt.data.navier_stokes import NavierStokesConfig, generate
    from fixpt.train import train

    path = generate(NavierStokesConfig(n_samples=12, resolution=16, fine=16, t_final=4, dt=1e-3), tmp_path, device="cuda")
    for amp in (True, False):
        metrics = train("vit", {"n_iter": 2}, {"data_file": str(path), "in_frames": 2, "out_frames": 2},
                              {"epochs": 3, "batch_size": 4, "amp": amp}, device="cuda")
        assert metrics["device"].startswith("cuda") and 0 < metrics["test_mse"] < 1


@cuda
def test_ddpm_trains_on_cuda_with_bf16_channels_last_and_fused_adamw(tmp_path):
    pytest.importorskip("diffusers")
    from fixpt.diffusion.train_loop import train_ddpm

    tiny = {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "ckpt_every": 3, "log_every": 1, "samples": 8, "eval_timesteps": 3}
    cpu = train_ddpm("ddpm", {"timesteps": 20}, {}, tiny, out=tmp_path / "cpu", device="cpu")
    gpu = train_ddpm("ddpm", {"timesteps": 20}, {}, {**tiny, "amp": True, "channels_last": True}, out=tmp_path / "gpu", device="cuda")
    assert gpu["device"].startswith("cuda") and (tmp_path / "gpu" / "samples.png").exists()
    # the same draws (one CPU generator for data, timesteps and noise): the first loss agrees to bf16 precision
    assert gpu["loss_curve"][0][1] == pytest.approx(cpu["loss_curve"][0][1], rel=2e-2)
    res = runner.invoke(app, ["iterate", str(tmp_path / "gpu" / "ckpt.pt"), "--steps", "2,20", "--samples", "4", "--device", "cuda", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "gpu" / "ckpt.pt"), "--t", "19,1", "--samples", "2", "--iters", "10",
                              "--device", "cuda", "--json"])
    assert res.exit_code in (0, 1) and len(json.loads(res.stdout)["rows"]) == 2, res.output


SEED_BATCH_CASES = {
    "gnn-gat": ("gnn", {"backbone": "gat", "dropout": 0.0, "attn_dropout": 0.0, "hidden": 16}),
    "pign-gcn": ("pign", {"backbone": "gcn", "dropout": 0.0, "hidden": 16}),
    "itergnn-sage": ("itergnn", {"backbone": "sage", "dropout": 0.0, "hidden": 16}),
}


@cuda
@pytest.mark.parametrize("case", list(SEED_BATCH_CASES))
def test_seed_batch_on_cuda_is_the_same_run_as_separate_training(case):
    """On the GPU too, seed s of a batch (dropout off) follows `train --seed s` on the GPU: same best
    and stopping epochs, same accuracies, validation loss to float rounding."""
    from fixpt.seed_batch import train_seeds
    from fixpt.train import train

    name, model_cfg = SEED_BATCH_CASES[case]
    data, tcfg, seeds = {"dataset": "csbm", "csbm_nodes": 200}, {"epochs": 12, "patience": 2}, [0, 1, 2]
    batched = train_seeds(name, model_cfg, data, tcfg, seeds, device="cuda")
    for s, b in zip(seeds, batched):
        single = train(name, model_cfg, data, {**tcfg, "seed": s}, device="cuda")
        assert b["device"].startswith("cuda") and single["device"].startswith("cuda")
        for key in ("best_epoch", "epochs_run", "val_accuracy", "test_accuracy", "train_accuracy"):
            assert b[key] == single[key], (case, s, key)
        assert b["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)


@cuda
def test_seed_batch_with_dropout_learns_on_cuda():
    """With dropout (random-bit masks drawn on the GPU, seeds drawing their own) every seed learns."""
    from fixpt.seed_batch import train_seeds

    results = train_seeds("pign", {"backbone": "gat", "hidden": 16}, {"dataset": "csbm", "csbm_nodes": 200},
                          {"epochs": 100, "patience": 100}, [0, 1, 2, 3], device="cuda")
    accs = [r["test_accuracy"] for r in results]
    assert min(accs) > 0.5 and len({r["val_loss"] for r in results}) == 4, accs  # 4 classes: chance 0.25
