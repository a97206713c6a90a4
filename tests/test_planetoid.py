"""Real Cora / CiteSeer from $FIXPT_DATA (read-only is fine), the drop-in noise, and a real
end-to-end CLI run on Cora. Skipped with a reason when the data is absent."""

import json
import math
import os
import shutil
import stat

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.graph import GraphDataConfig, drop_in_noise, load_graph
from fixpt.errors import FixptError

EXPECTED = {"cora": (2708, 1433, 7, 140), "citeseer": (3327, 3703, 6, 120)}


@pytest.fixture(scope="module")
def read_only_root(data_root, tmp_path_factory):
    """A read-only copy of the raw files, as CI's copy of shared/ is."""
    root = tmp_path_factory.mktemp("ro")
    shutil.copytree(data_root / "planetoid", root / "planetoid", ignore=shutil.ignore_patterns("processed"))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(root, 0o555)
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        os.chmod(dirpath, 0o755)


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_loads_offline_from_a_read_only_root(name, read_only_root):
    data = load_graph(GraphDataConfig(dataset=name, data_root=str(read_only_root)))
    n, f, c, n_train = EXPECTED[name]
    assert data.x.shape == (n, f) and data.num_classes == c
    assert int(data.train_mask.sum()) == n_train and int(data.val_mask.sum()) == 500 and int(data.test_mask.sum()) == 1000
    assert not any(p.name == "processed" for p in read_only_root.rglob("*"))
    rows = data.x.sum(1)
    assert torch.allclose(rows[rows > 0], torch.ones_like(rows[rows > 0]))  # row-normalised


def test_drop_in_noise_is_exact_and_fixed(data_root):
    clean = load_graph(GraphDataConfig(dataset="cora", data_root=str(data_root)))
    noisy = load_graph(GraphDataConfig(dataset="cora", data_root=str(data_root), noise=0.5))
    diff = noisy.x - clean.x
    n, f = clean.x.shape
    assert int((diff != 0).sum()) == math.floor(0.5 * n * f)
    assert torch.all((diff == 0) | torch.isclose(diff, torch.ones_like(diff), atol=1e-6))
    again = drop_in_noise(clean.x, 0.5, 2147483647)
    assert torch.equal(again, noisy.x)  # same seed, same graph: only the run's seed changes the model
    assert not torch.equal(drop_in_noise(clean.x, 0.5, 1), noisy.x)


def _authors_noise(x: torch.Tensor, percent: float, seed: int) -> torch.Tensor:
    """The authors' ``add_noise``, written out step by step: a vector of zeros then ones, permuted, reshaped, added."""
    length = x.shape[0] * x.shape[1]
    ones = math.floor(length * percent)
    noise = torch.cat((torch.zeros(length - ones), torch.ones(ones)))
    rng = torch.Generator()
    rng.manual_seed(seed)
    noise = noise[torch.randperm(noise.size(0), generator=rng)]
    return x + torch.reshape(noise, x.shape)


@pytest.mark.parametrize("shape, p, seed", [((7, 5), 0.5, 2147483647), ((13, 11), 0.3, 3), ((4, 4), 1.0, 0)])
def test_drop_in_noise_is_the_authors_draw(shape, p, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(drop_in_noise(x, p, seed), _authors_noise(x, p, seed))


def test_noisy_cora_is_the_authors_graph_entry_for_entry(data_root):
    clean = load_graph(GraphDataConfig(dataset="cora", data_root=str(data_root)))
    noisy = load_graph(GraphDataConfig(dataset="cora", data_root=str(data_root), noise=0.5))
    assert torch.equal(noisy.x, _authors_noise(clean.x, 0.5, 2147483647))
    # the draw of fixpt <= 0.1 (the first c entries of the permutation) had the same distribution but not these entries
    n, f = clean.x.shape
    first = torch.zeros(n * f)
    first[torch.randperm(n * f, generator=torch.Generator().manual_seed(2147483647))[:n * f // 2]] = 1.0
    assert not torch.equal(noisy.x, clean.x + first.reshape(n, f))


def test_missing_raw_files_say_where_they_belong(tmp_path):
    with pytest.raises(FixptError, match=r"CiteSeer raw files not found in .*planetoid/CiteSeer/raw"):
        load_graph(GraphDataConfig(dataset="citeseer", data_root=str(tmp_path)))


@pytest.mark.slow
def test_end_to_end_on_real_cora(data_root, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "pign", "--dataset", "cora", "--data-root", str(data_root), "--epochs", "60",
                              "--out", str(tmp_path), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["test_accuracy"] > 0.7  # far above chance (1/7); the full runs are in the README
    res = runner.invoke(app, ["iterate", str(tmp_path / "ckpt.pt"), "--max-iter", "20", "--json", "--device", "cpu"])
    assert res.exit_code == (0 if json.loads(res.stdout)["converged_at"] else 1), res.output  # 1: not converged
    its = json.loads(res.stdout)["iterations"]
    # the training forward stops at the same tolerance, or at its max_iter = 10
    k = min(10, len(its) - 1)
    assert its[k]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "ckpt.pt"), "--samples", "3", "--iters", "20", "--json"])
    assert res.exit_code in (0, 1), res.output
    report = json.loads(res.stdout)
    assert report["certified_bound"] >= report["empirical_ratio"]
