"""Masked-pixel reconstruction (paper, Table 3): the data (digits offline, CIFAR-10's real loader on a
stand-in in the release's format), the pixel-space iteration, training, and `--task` on the command line."""

import json
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.images import MaskedPixelsDataConfig, fixed_masks, load_masked_pixels
from fixpt.errors import FixptError
from fixpt.train import build, train

runner = CliRunner()


def test_digits_with_fixed_masks():
    data = load_masked_pixels(MaskedPixelsDataConfig())
    assert data.y.shape == (1797, 1, 8, 8) and 0 <= float(data.y.min()) and float(data.y.max()) == 1.0
    assert (int(data.train_mask.sum()), int(data.val_mask.sum()), int(data.test_mask.sum())) == (1198, 299, 300)
    keep = fixed_masks((1797, 1, 8, 8), 0.75, 0)
    assert torch.equal(keep.sum(dim=(1, 2, 3)), torch.full((1797,), 16.0))  # exactly 48 of 64 pixels blacked out
    assert torch.equal(data.x, data.y * keep)
    assert torch.equal(load_masked_pixels(MaskedPixelsDataConfig()).x, data.x)  # the same masks every time


def test_pixel_iteration_is_the_papers():
    """x_0 = the masked image, x_{i+1} = (1 - lam) T(x_i) + lam x_i, the output is x_N."""
    torch.manual_seed(0)
    _, task, model, data, _, _ = build("vit", {"patch": 2, "n_iter": 3, "alpha": 0.5}, {}, torch.device("cpu"), task="masked-pixels")
    sub = data.subset(torch.arange(16))
    model.eval()
    with torch.no_grad():
        out = model(sub)
        x = sub.x
        for _ in range(3):
            x = 0.5 * model.image_map(x) + 0.5 * x
    assert torch.allclose(out, x, atol=1e-6)
    assert out.shape == sub.y.shape and model.last_solution.n_iter == 3


def test_training_reconstructs_better_than_the_masked_input():
    torch.manual_seed(0)
    metrics = train("vit", {"patch": 2, "n_iter": 2, "variant": "vit-small"}, {}, {"epochs": 4, "batch_size": 60, "lr": 3e-3}, task="masked-pixels")
    data = load_masked_pixels(MaskedPixelsDataConfig())
    masked_mse = float(((data.x - data.y)[data.test_mask] ** 2).mean())
    assert metrics["task"] == "masked-pixels" and metrics["test_mse"] < 0.6 * masked_mse


def write_cifar_standin(root, n_per_batch=20, n_test=20):
    """The official release's layout and pickle format (cifar-10-batches-py), with random pixels."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)


def test_cifar10_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    write_cifar_standin(tmp_path)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # the stand-in's files have other checksums
    data = load_masked_pixels(MaskedPixelsDataConfig(images="cifar10", data_root=str(tmp_path)))
    assert data.y.shape == (120, 3, 32, 32)
    assert (int(data.train_mask.sum()), int(data.val_mask.sum()), int(data.test_mask.sum())) == (90, 10, 20)
    blacked = (data.x == 0).all(dim=1).float().mean(dim=(1, 2))  # one mask across the three channels
    assert torch.allclose(blacked[data.y.flatten(1).min(1).values > 0], torch.tensor(0.75))


def test_missing_cifar10_is_one_line(tmp_path):
    res = runner.invoke(app, ["train", "vit", "--task", "masked-pixels", "--images", "cifar10", "--data-root", str(tmp_path), "--epochs", "1"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "CIFAR-10 not found" in lines[0] and "--images digits" in lines[0]


def test_task_option(tmp_path):
    res = runner.invoke(app, ["train", "vit", "--task", "masked-pixels", "--patch", "2", "--n-iter", "2", "--epochs", "1",
                              "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["iterate", str(tmp_path / "run" / "ckpt.pt"), "--max-iter", "3", "--json"])
    assert res.exit_code == (0 if json.loads(res.stdout)["converged_at"] else 1), res.output  # it remembers its task; 1: not converged
    for args, needle in [(["--task", "nope"], "does not do task 'nope'"),
                         (["--task", "masked-pixels", "--in-frames", "3"], "--in-frames is not an option of task 'masked-pixels'"),
                         (["--task", "masked-pixels", "--variant", "vit-3d"], "needs a 2-D variant")]:
        res = runner.invoke(app, ["train", "vit", *args, "--epochs", "1"])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output
    with pytest.raises(FixptError, match="does not do task"):
        build("pign", {}, {}, torch.device("cpu"), task="masked-pixels")


def test_paper_size_is_the_papers_table3_vit():
    """12 encoder and 4 decoder blocks, width 192, 3 heads, patch 2 (paper, Table 3)."""
    _, _, model, data, _, _ = build("vit", {"size": "paper"}, {}, torch.device("cpu"), task="masked-pixels")
    blocks = lambda m: [b for b in m.modules() if type(b).__name__ == "Block"]  # noqa: E731
    assert len(blocks(model.encoder)) == 12 and len(blocks(model.decoder)) == 4
    assert all(b.attn.num_heads == 3 for b in blocks(model)) and model.tokens.pos.shape == (1, 16, 192)  # 8 x 8 / patch 2
