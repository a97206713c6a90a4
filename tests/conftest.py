import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message=".*torch.jit.script.*")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device present: the CPU always, CUDA when visible."""
    return torch.device(request.param)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Processed data sets go to a per-session cache, never to the user's or next to raw files."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("FIXPT_DATA")
    if not root or not (Path(root) / "planetoid" / "Cora" / "raw").is_dir():
        pytest.skip("real Planetoid data not found: set FIXPT_DATA to the folder holding planetoid/ (CI: ../shared/data)")
    return Path(root)
