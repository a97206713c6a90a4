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


def _shared_folder(name: str, probe: str) -> Path:
    root = os.environ.get("FIXPT_DATA")
    if not root or not (Path(root) / name / probe).exists():
        pytest.skip(f"real data {name}/ not found: set FIXPT_DATA to the folder holding {name}/ (CI: ../shared/data)")
    return Path(root) / name


@pytest.fixture(scope="session")
def pdb_dir() -> Path:
    """Five real experimental single-chain structures (``shared/data/pdb``)."""
    return _shared_folder("pdb", "1UBQ.pdb")


@pytest.fixture(scope="session")
def rfah_dir() -> Path:
    """One real ColabFold run of RfaH with recycles r0..r3 and two experimental structures (``shared/data/af2/RfaH``)."""
    return _shared_folder("af2", "RfaH/experimental/2oug_C.pdb") / "RfaH"
