"""DDPM (fixpt.diffusion): the reverse step against diffusers and closed forms, sampling schedules,
resumable training, two-process DDP against one process, the metrics, and the commands."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("diffusers")

from fixpt.cli import app  # noqa: E402
from fixpt.diffusion.data import ImageGenerationDataConfig, load_images  # noqa: E402
from fixpt.diffusion.metrics import digits_classifier, fid, loss_area, quality_score, timestep_losses  # noqa: E402
from fixpt.diffusion.model import DDPM, DDPMConfig  # noqa: E402
from fixpt.diffusion.sampling import posterior_mean, reverse_step_norms, sampling_timesteps, step_coefficients  # noqa: E402
from fixpt.diffusion.train_loop import STATE_FILE, train_ddpm  # noqa: E402
from fixpt.errors import FixptError  # noqa: E402

runner = CliRunner()
TINY = {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "ckpt_every": 3, "log_every": 1, "samples": 0, "eval_timesteps": 3}
TINY_FLAGS = ["--max-steps", "6", "--batch-size", "8", "--warmup-steps", "2", "--ckpt-every", "3", "--log-every", "1",
              "--samples", "0", "--eval-timesteps", "3", "--timesteps", "20", "--device", "cpu"]


def make_model(T=50, clip=True, seed=0) -> DDPM:
    torch.manual_seed(seed)
    return DDPM(DDPMConfig(timesteps=T, clip_sample=clip), (1, 8)).eval()


# ---------------------------------------------------------------- the reverse step


@pytest.mark.parametrize("t", [0, 1, 17, 49])
def test_posterior_mean_is_diffusers_step_without_its_noise(t):
    model = make_model()
    x = torch.randn(3, 1, 8, 8) * 1.5
    with torch.no_grad():
        eps = model(x, torch.full((3,), t))
        scheduler = model.scheduler
        stepped = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        mine = posterior_mean(model, x, t)
    sigma = step_coefficients(model, t, t - 1)["sigma"]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5)) if t > 0 else torch.zeros_like(x)
    torch.testing.assert_close(mine + sigma * noise, stepped, rtol=1e-5, atol=1e-5)


def test_reverse_step_jacobian_matches_closed_form():
    """With the UNet's output layer zeroed, eps = 0 and (no clipping) mu(x) = (c_x0 / sqrt(abar_t) + c_xt) x: J is that times I."""
    model = make_model(T=100, clip=False)
    with torch.no_grad():
        model.unet.conv_out.weight.zero_()
        model.unet.conv_out.bias.zero_()
    for t in (99, 40, 1):
        c = step_coefficients(model, t, t - 1)
        exact = c["coef_x0"] / c["abar_t"] ** 0.5 + c["coef_xt"]
        norms = reverse_step_norms(model, torch.randn(4, 1, 8, 8), t, iters=30)
        torch.testing.assert_close(norms, torch.full((4,), exact), rtol=1e-5, atol=0)
    assert exact > 1.0  # the step x_1 -> x_0 expands by 1 / sqrt(alpha_1) when the model predicts no noise


def test_reverse_step_derivatives_match_finite_differences():
    """J v (forward mode) and J^T u (reverse mode) of the step map, which the power iteration uses,
    against a central-difference Jacobian; the power-iteration norm is a lower bound on its largest
    singular value (SVD) and within 3 % of it after 30 steps (the spectrum is clustered near 1.3)."""
    from fixpt.contraction import jvp
    from torch.func import vjp

    model = make_model(T=50, clip=False).double()  # float64: central differences accurate to ~1e-9
    with torch.no_grad():
        model.unet.conv_out.weight.mul_(30)  # make the network's part of the Jacobian count
    x, t, h = torch.randn(1, 1, 8, 8, dtype=torch.float64), 30, 1e-5
    E = (h * torch.eye(64, dtype=torch.float64)).view(64, 1, 8, 8)
    with torch.no_grad():  # all 64 directions in one batch (the UNet treats samples independently)
        J = ((posterior_mean(model, x + E, t) - posterior_mean(model, x - E, t)) / (2 * h)).view(64, 64).T
    step = lambda z: posterior_mean(model, z, t)  # noqa: E731
    v, u = torch.randn_like(x), torch.randn_like(x)
    Jv = jvp(step, (x,), (v,))[1]
    (JTu,) = vjp(step, x)[1](u)
    torch.testing.assert_close(Jv.flatten(), J @ v.flatten(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(JTu.flatten(), J.T @ u.flatten(), rtol=1e-6, atol=1e-7)
    sigma = float(torch.linalg.matrix_norm(J, ord=2))
    est = float(reverse_step_norms(model, x, t, iters=30))
    assert 0.97 * sigma <= est <= sigma * (1 + 1e-3)


def test_ddim_step_is_diffusers_ddim_where_n_divides_T():
    from diffusers import DDIMScheduler

    from fixpt.diffusion.sampling import ddim_step

    model = make_model(T=50)
    ddim = DDIMScheduler.from_config(model.scheduler.config, clip_sample=False)  # our DDIM never clips (see ddim_step)
    ddim.set_timesteps(5)
    ts = [int(t) for t in ddim.timesteps]
    assert ts == sampling_timesteps(model, 5)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        for i, t in enumerate(ts):
            eps = model(x, torch.full((2,), t))
            ours = ddim_step(model, eps, x, t, ts[i + 1] if i + 1 < len(ts) else -1)
            x = ddim.step(eps, t, x).prev_sample
            torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-6)


def test_ddim_samples_converge_as_the_steps_grow():
    """DDIM is a first-order discretisation of one ODE: from one noise, the change between 5, 10, 20
    and 40 steps shrinks; the ancestral sampler's does not (fresh noise at every step)."""
    from fixpt.diffusion.sampling import sample

    model = make_model(T=40)
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ddim = [sample(model, noise, n, sampler="ddim") for n in (5, 10, 20, 40)]
    changes = [float((b - a).pow(2).mean().sqrt()) for a, b in zip(ddim, ddim[1:])]
    assert changes[0] > changes[1] > changes[2] and changes[2] < 0.6 * changes[0]
    ddpm = [sample(model, noise, n, generator=torch.Generator().manual_seed(1)) for n in (20, 40)]
    assert float((ddpm[1] - ddpm[0]).pow(2).mean().sqrt()) > 2 * changes[2]


def test_sampling_timesteps_are_trailing_and_checked():
    model = make_model(T=50)
    assert sampling_timesteps(model, 5) == [49, 39, 29, 19, 9]
    assert sampling_timesteps(model, 50) == list(range(49, -1, -1))
    with pytest.raises(FixptError, match="1..50"):
        sampling_timesteps(model, 51)


# ---------------------------------------------------------------- model, data, metrics


def test_sizes_and_resolution_checks():
    from fixpt.diffusion.model import unet_config

    with torch.device("meta"):
        paper = DDPM(DDPMConfig(size="paper"), (3, 32))
    n = sum(p.numel() for p in paper.parameters())
    assert 110e6 < n < 112e6  # appendix B.1's UNet: 111.0 M parameters (the README quotes the count)
    blocks = paper.unet.config
    assert tuple(blocks.block_out_channels) == (128, 256, 256, 512, 512) and blocks.layers_per_block == 2
    assert blocks.down_block_types[3] == "AttnDownBlock2D" and blocks.up_block_types[1] == "AttnUpBlock2D"
    with pytest.raises(FixptError, match="--resolution 16"):
        unet_config("paper", 1, 8)


def test_images_are_in_range_and_split():
    data = load_images(ImageGenerationDataConfig())
    assert (len(data.train), len(data.val), len(data.test)) == (1198, 299, 300)
    assert data.train.min() == -1.0 and data.train.max() == 1.0
    big = load_images(ImageGenerationDataConfig(resolution=16))
    assert big.test.shape[1:] == (1, 16, 16) and big.test.abs().max() <= 1.0


def test_loss_area_is_the_trapezoid_integral():
    ts = [0, 25, 50, 99]
    assert loss_area(ts, [2 * t / 99 for t in ts], 100) == pytest.approx(1.0)  # integral of 2u over [0, 1]
    assert loss_area([0, 99], [3.0, 3.0], 100) == pytest.approx(3.0)


def test_timestep_loss_of_a_zero_predictor_is_one():
    """eps_theta = 0 makes the loss E||eps||^2 / d = 1 at every t (here over 300 x 64 noise draws)."""
    model = make_model()
    with torch.no_grad():
        model.unet.conv_out.weight.zero_()
        model.unet.conv_out.bias.zero_()
    ts, losses = timestep_losses(model, load_images(ImageGenerationDataConfig()).test, 5)
    assert ts == [0, 12, 24, 37, 49]
    assert losses == pytest.approx([1.0] * 5, abs=0.02)


def test_quality_score_separates_digits_from_noise():
    cfg = ImageGenerationDataConfig()
    clf, accuracy = digits_classifier(cfg)
    data = load_images(cfg)
    assert accuracy > 0.95
    real = quality_score(clf, data.test)
    noise = quality_score(clf, torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert real["confident"] > 0.8 and real["class_entropy"] > 3.2
    assert noise["confident"] < real["confident"] - 0.3


def test_stand_in_fid_is_the_frechet_distance_of_the_classifier_features():
    import numpy as np
    from scipy import linalg

    cfg = ImageGenerationDataConfig()
    clf, _ = digits_classifier(cfg)
    data = load_images(cfg)
    real, fake = data.test, data.val.flip(-1)  # mirrored digits: a real shift of the distribution
    value, kind = fid(real, fake, clf=clf)
    assert "not comparable" in kind
    with torch.no_grad():
        a, b = (clf.features(x).double().numpy() for x in (real, fake))
    m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # a few ReLU features are dead on digits: the covariances are singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        exact = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    assert value == pytest.approx(exact, rel=1e-3)
    same, _ = fid(real, real, clf=clf)
    assert abs(same) < 1e-3 * exact


def test_missing_fid_weights_is_one_clear_error():
    with pytest.raises(FixptError, match="no such file"):
        fid(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), weights="/nonexistent/inception.pth")


# ---------------------------------------------------------------- training: resume and DDP


def _losses(folder: Path) -> torch.Tensor:
    return torch.load(folder / STATE_FILE, weights_only=True)["losses"]


def _weights(folder: Path) -> dict:
    return torch.load(folder / STATE_FILE, weights_only=True)["model_state"]


def _mark(folder: Path) -> None:
    """Overwrite the first stored loss with 123: a resumed run keeps its stored history (a run that
    silently started again would recompute it), so the mark tells the two apart."""
    state = torch.load(folder / STATE_FILE, weights_only=True)
    state["losses"][0] = 123.0
    torch.save(state, folder / STATE_FILE)


def test_killed_and_resumed_run_repeats_the_uninterrupted_run(tmp_path):
    cfgs = ({"timesteps": 20}, {}, dict(TINY))
    train_ddpm("ddpm", *cfgs, out=tmp_path / "full", device="cpu")

    class Killed(Exception):
        pass

    def kill_at_step_5(step, ev):  # after the checkpoint of step 3 and two more steps that are lost
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train_ddpm("ddpm", *cfgs, out=tmp_path / "killed", device="cpu", on_epoch=kill_at_step_5)
    assert len(_losses(tmp_path / "killed")) == 3 and not (tmp_path / "killed" / "metrics.json").exists()
    _mark(tmp_path / "killed")
    train_ddpm("ddpm", {}, {}, {"resume": str(tmp_path / "killed")}, device="cpu")
    full, resumed = _losses(tmp_path / "full"), _losses(tmp_path / "killed")
    assert len(full) == len(resumed) == 6 and resumed[0] == 123.0
    torch.testing.assert_close(resumed[1:], full[1:], rtol=0, atol=0)
    for k, v in _weights(tmp_path / "full").items():
        torch.testing.assert_close(_weights(tmp_path / "killed")[k], v, rtol=0, atol=0)
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["steps"] == 6


def test_cli_run_killed_by_sigkill_resumes_to_the_same_curve(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    flags = [*TINY_FLAGS, "--max-steps", "40", "--ckpt-every", "5", "--json"]
    base = [sys.executable, "-m", "fixpt", "train", "ddpm"]
    subprocess.run([*base, *flags, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*base, *flags, "--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / STATE_FILE
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_losses(tmp_path / "killed"))
    assert done_before < 40, "the run finished before it could be killed; the test needs a longer run"
    _mark(tmp_path / "killed")
    res = subprocess.run([*base, "--resume", str(tmp_path / "killed"), "--json", "--device", "cpu"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    resumed = _losses(tmp_path / "killed")
    assert resumed[0] == 123.0
    torch.testing.assert_close(resumed[1:], _losses(tmp_path / "full")[1:], rtol=0, atol=0)


def test_two_gloo_processes_equal_one_process(tmp_path):
    """Also the default evaluation after training (samples, FID) on rank 0 alone: it must not gather across ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    flags = [*TINY_FLAGS, "--json"]
    flags[flags.index("--samples") + 1] = "8"
    one = subprocess.run([sys.executable, "-m", "fixpt", "train", "ddpm", *flags, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port,
                          "-m", "fixpt", "train", "ddpm", *flags, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    reported = [json.loads(line) for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(reported) == 1 and reported[0]["world_size"] == 2  # rank 0 alone reports
    assert reported[0]["fid"] is not None  # the evaluation ran (before: gloo "Connection reset by peer" at its end)
    torch.testing.assert_close(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-5, atol=1e-6)
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    init = make_model(T=20, seed=0).unet.state_dict()  # train_ddpm seeds the weights with the run's seed, 0
    moved = max(float((w1[k] - init[k]).abs().max()) for k in w1)
    assert moved > 2e-4  # six AdamW steps moved the weights far beyond the tolerance below
    for k in w1:  # Adam's m / sqrt(v) magnifies summation-order differences in tiny gradients, hence atol 2e-5
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=2e-5)


def test_resume_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["train", "ddpm", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "no train_state.pt" in res.output
    train_ddpm("ddpm", {"timesteps": 20}, {}, dict(TINY), out=tmp_path / "run", device="cpu")
    res = runner.invoke(app, ["train", "ddpm", "--resume", str(tmp_path / "run"), "--timesteps", "30", "--device", "cpu"])
    assert res.exit_code == 2 and "conflicts with the run being resumed" in res.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / STATE_FILE).write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["train", "ddpm", "--resume", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "damaged" in res.output


# ---------------------------------------------------------------- the commands on a trained checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm")
    res = runner.invoke(app, ["train", "ddpm", *TINY_FLAGS, "--samples", "16", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_samples_and_labelled_metrics(trained):
    m = json.loads((trained / "metrics.json").read_text())
    assert (trained / "samples.png").exists() and (trained / "ckpt.pt").exists()
    assert m["fid_kind"].startswith("digits-classifier") and "not comparable" in m["fid_kind"]
    assert 0 <= m["quality"] <= 1 and m["quality_real"] > 0.8
    assert len(m["loss_per_timestep"]) == 3 and m["loss_per_timestep"][-1][0] == 1.0


def test_iterate_steps_writes_grids_and_changes(trained, tmp_path):
    res = runner.invoke(app, ["iterate", str(trained / "ckpt.pt"), "--steps", "2,5,20", "--samples", "4", "--out", str(tmp_path), "--json",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert [r["steps"] for r in result["rows"]] == [2, 5, 20] and result["rows"][0]["change"] is None
    assert all(r["change"] > 0 for r in result["rows"][1:])
    assert all((tmp_path / f"steps_{n}.png").exists() for n in (2, 5, 20)) and (tmp_path / "steps_overview.png").exists()
    bad = runner.invoke(app, ["iterate", str(trained / "ckpt.pt"), "--steps", "50", "--device", "cpu"])
    assert bad.exit_code == 2 and "T = 20" in bad.output


def test_check_contraction_at_timesteps(trained):
    res = runner.invoke(app, ["check-contraction", str(trained / "ckpt.pt"), "--t", "19,10,1", "--samples", "3", "--iters", "20",
                              "--json", "--device", "cpu"])
    assert res.exit_code in (0, 1), res.output
    result = json.loads(res.output)
    assert [r["t"] for r in result["rows"]] == [19, 10, 1]
    assert all(0 < r["min"] <= r["median"] <= r["max"] for r in result["rows"])
    assert res.exit_code == (0 if result["contractive"] else 1)
    bad = runner.invoke(app, ["check-contraction", str(trained / "ckpt.pt"), "--t", "20", "--device", "cpu"])
    assert bad.exit_code == 2 and "1..19" in bad.output


def test_diffusion_options_on_other_models_are_errors(tmp_path):
    res = runner.invoke(app, ["train", "pign", "--dataset", "csbm", "--epochs", "2", "--out", str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["iterate", str(tmp_path / "ckpt.pt"), "--steps", "10"])
    assert res.exit_code == 2 and "--steps does not apply to 'pign' (a fixed-point model)" in res.output
    assert "--max-iter" in res.output  # the options it has are listed
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "ckpt.pt"), "--t", "10"])
    assert res.exit_code == 2 and "--t does not apply to 'pign'" in res.output


def test_fig2_sweep_and_report(tmp_path):
    """The fig2 preset end to end at a toy scale: two T, a resumable sweep, the fig2 table and its figures."""
    preset = "fig2"  # the built-in preset, by name
    sets = ["timesteps=[20,40]", "max_steps=4", "batch_size=8", "warmup_steps=2", "ckpt_every=2", "log_every=2",
            "samples=8", "eval_timesteps=3"]
    args = ["sweep", str(preset), "--out", str(tmp_path / "sw"), "--device", "cpu", "--no-ckpt"]
    for s in sets:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "sw"), "--format", "json", "--plot", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert sorted({r["T"] for r in records}) == [20, 40]
    assert {r["column"] for r in records} >= {"test loss area", "FID", "quality"}
    assert all("not comparable" in r["fid_kind"] for r in records)
    assert (tmp_path / "fig" / "fig2_loss_fid.png").exists() and (tmp_path / "fig" / "fig8_loss_per_timestep.png").exists()
    md = runner.invoke(app, ["report", str(tmp_path / "sw")])
    assert md.exit_code == 0 and "| T |" in md.stdout and "FID features: digits-classifier" in md.stdout
    bad = runner.invoke(app, ["report", str(tmp_path / "sw"), "--compare", "paper"])
    assert bad.exit_code == 2 and "figures only" in bad.output


def test_sweep_continues_a_killed_ddpm_run_from_its_state(tmp_path):
    from fixpt import sweep as sw

    preset = "fig2"  # the built-in preset, by name
    overrides = {"timesteps": [20], "max_steps": 6, "batch_size": 8, "warmup_steps": 2, "ckpt_every": 3, "log_every": 1,
                 "samples": 0, "eval_timesteps": 3}
    plan = sw.load_preset(preset, overrides=overrides)
    (run,) = plan.runs
    folder = sw.run_dir(tmp_path, run).path

    def kill_at_step_5(step, ev):
        if step == 5:
            raise KeyboardInterrupt  # the sweep process dies after the state of step 3

    with pytest.raises(KeyboardInterrupt):
        train_ddpm(run.model, run.configs["model_config"], run.configs["data"], run.configs["train"], out=folder, device="cpu",
                   on_epoch=kill_at_step_5)
    assert sw.status(tmp_path, run) != "done" and len(_losses(folder)) == 3
    _mark(folder)
    counts = sw.run_sweep(plan, tmp_path, device="cpu", save_ckpt=False)
    assert counts["finished"] == 1 and counts["failed"] == 0
    resumed = _losses(folder)
    assert len(resumed) == 6 and resumed[0] == 123.0
    train_ddpm(run.model, run.configs["model_config"], run.configs["data"], run.configs["train"], out=tmp_path / "whole", device="cpu")
    torch.testing.assert_close(resumed[1:], _losses(tmp_path / "whole")[1:], rtol=0, atol=0)


def test_cifar10_images_for_diffusion_through_torchvision(tmp_path, monkeypatch):
    """The CIFAR-10 path on a stand-in in the official pickle format (the real files are not here)."""
    import torchvision.datasets.cifar as cifar

    from test_masked_pixels import write_cifar_standin

    write_cifar_standin(tmp_path)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # the stand-in's files have other checksums
    data = load_images(ImageGenerationDataConfig(images="cifar10", data_root=str(tmp_path)))
    assert data.train.shape[1:] == (3, 32, 32) and len(data.test) == 20 and len(data.val) == 10
    assert data.train.min() >= -1.0 and data.train.max() <= 1.0 and data.labels == {}
    with torch.device("meta"):
        DDPM(DDPMConfig(size="paper"), data.shape)  # 32 is a multiple of 16: the paper UNet fits CIFAR-10 as it is
    res = runner.invoke(app, ["train", "ddpm", "--images", "cifar10", "--data-root", str(tmp_path / "none"), "--max-steps", "1"])
    assert res.exit_code == 2 and "CIFAR-10 not found" in res.output
