"""FNO-format .mat files in both MATLAB formats, written here: v5 by scipy.io.savemat, v7.3 as MATLAB writes
it (HDF5 after a 512-byte text header, every array stored column-major, i.e. with its axes reversed)."""

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from fixpt.data.fno_mat import is_mat_file, read_fno_mat
from fixpt.errors import FixptError


def fno_arrays(n=3, s=4, t=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, s, s)).astype(np.float32), rng.standard_normal((n, s, s, t)).astype(np.float32)


def write_v73(path, **arrays):
    """What MATLAB's save -v7.3 writes: a userblock with the MAT header text, datasets with their axes reversed
    (C order of the transposed array = MATLAB's column-major layout) and a MATLAB_class attribute."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            d = f.create_dataset(name, data=np.ascontiguousarray(value.transpose()))
            d.attrs["MATLAB_class"] = np.bytes_("single")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_v5_and_v73_read_the_same_arrays(tmp_path):
    a, u = fno_arrays()
    v5, v73 = tmp_path / "v5.mat", tmp_path / "v73.mat"
    scipy.io.savemat(v5, {"a": a, "u": u, "t": np.arange(1, 6, dtype=np.float32)})
    write_v73(v73, a=a, u=u)
    assert h5py.is_hdf5(v73) and v73.read_bytes()[:10] == b"MATLAB 7.3" and not h5py.is_hdf5(v5)
    for path in (v5, v73):
        assert is_mat_file(path)
        data = read_fno_mat(path, frames=[0, 2, 4])
        assert data["initial"].dtype == torch.float32 and data["frames"].shape == (3, 3, 4, 4)
        assert torch.equal(data["initial"], torch.from_numpy(a))
        # frames move to dimension 1 (channels): frames[n, j] = u[n, :, :, k_j]
        assert torch.equal(data["frames"], torch.from_numpy(np.moveaxis(u[..., [0, 2, 4]], -1, 1)))
        assert torch.equal(read_fno_mat(path)["frames"], torch.from_numpy(np.moveaxis(u, -1, 1)))


def test_v73_axis_order_is_matlabs_not_hdf5s(tmp_path):
    """Distinct sizes on every axis: the HDF5 dataset is (T, S, S, N), the array read (N, S, S) / (N, T, S, S)."""
    a, u = fno_arrays(n=2, s=3, t=4)
    a[1, 0, 2] = 7.0  # one element on a non-symmetric spot: a transposed read would move it
    u[1, 2, 0, 3] = 9.0
    path = tmp_path / "v73.mat"
    write_v73(path, a=a, u=u)
    with h5py.File(path, "r") as f:
        assert f["u"].shape == (4, 3, 3, 2) and f["a"].shape == (3, 3, 2)
    data = read_fno_mat(path)
    assert data["initial"][1, 0, 2] == 7.0 and data["frames"][1, 3, 2, 0] == 9.0
    assert torch.equal(data["initial"], torch.from_numpy(a))


@pytest.mark.parametrize("arrays, needle", [
    ({"x": np.zeros((2, 4, 4)), "u": np.zeros((2, 4, 4, 3))}, "no variable 'a' (found: u, x)"),
    ({"a": np.zeros((2, 4, 4))}, "no variable 'u'"),
    ({"a": np.zeros((2, 4, 5)), "u": np.zeros((2, 4, 5, 3))}, "a has shape (2, 4, 5); expected (N, S, S)"),
    ({"a": np.zeros((2, 4, 4)), "u": np.zeros((2, 4, 4))}, "u has shape (2, 4, 4); expected (N, S, S, T) = (2, 4, 4, T)"),
    ({"a": np.zeros((2, 4, 4)), "u": np.zeros((3, 4, 4, 5))}, "u has shape (3, 4, 4, 5)"),
])
@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_wrong_keys_or_shapes_name_the_problem(tmp_path, arrays, needle, fmt):
    path = tmp_path / "bad.mat"
    if fmt == "v5":
        scipy.io.savemat(path, arrays)
    else:
        write_v73(path, **arrays)
    with pytest.raises(FixptError) as e:
        read_fno_mat(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_missing_frames_and_unreadable_files(tmp_path):
    a, u = fno_arrays(t=5)
    path = tmp_path / "short.mat"
    scipy.io.savemat(path, {"a": a, "u": u})
    with pytest.raises(FixptError, match=r"u has 5 frames \(t = 1..5\); frame t = 10 is needed"):
        read_fno_mat(path, frames=[0, 9])
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(FixptError, match="not a readable MATLAB .mat file"):
        read_fno_mat(junk)
    junk.write_bytes(b"short")  # under scipy's 128-byte header: MatReadError ("truncated"), not ValueError
    with pytest.raises(FixptError, match="not a readable MATLAB .mat file"):
        read_fno_mat(junk)
    with pytest.raises(FixptError, match="does not exist"):
        read_fno_mat(tmp_path / "missing.mat")


def test_cli_refuses_a_bad_mat_file_in_one_line(tmp_path):
    """`--data-file` on the Navier-Stokes tasks: a .mat with the wrong shapes is exit 2 and one line."""
    from typer.testing import CliRunner

    from fixpt.cli import app

    path = tmp_path / "bad.mat"
    write_v73(path, a=np.zeros((12, 8, 8), np.float32), u=np.zeros((12, 8, 6, 4), np.float32))
    for task in ("navier-stokes", "ns-initial"):
        res = CliRunner().invoke(app, ["train", "vit", "--task", task, "--data-file", str(path), "--epochs", "1"])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert "u has shape (12, 8, 6, 4); expected (N, S, S, T) = (12, 8, 8, T)" in lines[0]


def test_navier_stokes_task_reads_an_fno_file(tmp_path):
    """in_frames = 2, out_frames = 2 from u: inputs u[..., 0:2] (t = 1, 2), targets u[..., 2:4] (t = 3, 4)."""
    from fixpt.data.fields import NavierStokesDataConfig, load_navier_stokes

    a, u = fno_arrays(n=12, s=8, t=5)
    path = tmp_path / "ns.mat"
    scipy.io.savemat(path, {"a": a, "u": u})
    data = load_navier_stokes(NavierStokesDataConfig(data_file=str(path), in_frames=2, out_frames=2))
    assert torch.equal(data.x, torch.from_numpy(np.moveaxis(u[..., :2], -1, 1)))
    assert torch.equal(data.y, torch.from_numpy(np.moveaxis(u[..., 2:4], -1, 1)))
