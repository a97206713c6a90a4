"""Typed configs, the registry and checkpoint loading: every bad input is a one-line FixptError."""

import os
import pickle

import pytest
import torch

import fixpt
from fixpt.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from fixpt.config import from_dict
from fixpt.errors import FixptError
from fixpt.models.pign import PIGNConfig


def test_registry_lists_the_models():
    assert {"pign", "gnn", "itergnn"} <= set(fixpt.list_models())
    assert fixpt.list_models("pi*") == ["pign"]
    with pytest.raises(FixptError, match="unknown model 'nope'.*pign"):
        fixpt.get_spec("nope")


def test_register_refuses_a_second_use_of_a_name():
    with pytest.raises(ValueError, match="already registered"):
        fixpt.register("pign", config=PIGNConfig, task="node-classification")(type("X", (), {}))


def test_unknown_key_names_it_and_lists_valid_keys():
    with pytest.raises(FixptError) as e:
        from_dict(PIGNConfig, {"hiden": 32})
    msg = str(e.value)
    assert "'hiden'" in msg and "did you mean 'hidden'" in msg and "valid keys:" in msg and "backbone" in msg


def test_choices_and_types_are_checked():
    with pytest.raises(FixptError, match="backbone.*gcn, gat, sage"):
        from_dict(PIGNConfig, {"backbone": "gin"})
    with pytest.raises(FixptError, match="expects int"):
        from_dict(PIGNConfig, {"hidden": "wide"})
    cfg = from_dict(PIGNConfig, {"hidden": "32", "contractive": "true", "alpha": "0.7"})
    assert cfg.hidden == 32 and cfg.contractive is True and cfg.alpha == 0.7
    with pytest.raises(FixptError, match="gamma"):
        from_dict(PIGNConfig, {"contractive": True, "gamma": 1.5})
    for alpha in (1.0, -0.1):
        with pytest.raises(FixptError, match=r"key 'alpha' must be >= 0 and < 1"):
            from_dict(PIGNConfig, {"alpha": alpha})


def _save(path, **over):
    kw = dict(model="pign", config={}, data={}, state_dict={"w": torch.ones(2)})
    kw.update(over)
    save_checkpoint(path, **kw)


def test_roundtrip(tmp_path):
    _save(tmp_path / "ckpt.pt", metrics={"val_accuracy": 0.5})
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["fixpt_version"] == fixpt.__version__
    assert ckpt["metrics"]["val_accuracy"] == 0.5 and torch.equal(ckpt["state_dict"]["w"], torch.ones(2))
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file


def test_missing_and_directory(tmp_path):
    with pytest.raises(FixptError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    _save(tmp_path / "ckpt.pt")
    with pytest.raises(FixptError, match="directory.*did you mean its ckpt.pt"):
        load_checkpoint(tmp_path)


def test_truncated_and_garbage(tmp_path):
    _save(tmp_path / "ckpt.pt")
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FixptError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(FixptError, match="truncated or corrupt|not a fixpt"):
        load_checkpoint(tmp_path / "text.pt")


def test_not_a_fixpt_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(FixptError, match="not a fixpt checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_newer_format_version(tmp_path):
    _save(tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    ckpt["format_version"] = FORMAT_VERSION + 1
    torch.save(ckpt, tmp_path / "new.pt")
    with pytest.raises(FixptError, match="newer.*upgrade fixpt"):
        load_checkpoint(tmp_path / "new.pt")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_code_in_the_file_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "fixpt-checkpoint", "format_version": 1, "payload": _Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(FixptError, match="posix.system; refusing to unpickle"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # and a raw pickle file, not a zip archive
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(FixptError):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_checkpoint_of_format_1_still_loads(tmp_path):
    """Format 1 files may keep PIGN's input layer at encoder.1 (behind a dropout module); it is encoder.0 now."""
    from fixpt.train import load_trained, train

    train("pign", {"hidden": 8}, {"csbm_nodes": 80}, {"epochs": 2}, out=tmp_path / "new", device="cpu")
    ckpt = load_checkpoint(tmp_path / "new" / "ckpt.pt")
    old_state = {(k.replace("encoder.0.", "encoder.1.")): v for k, v in ckpt["state_dict"].items()}
    assert "encoder.1.weight" in old_state
    torch.save({**ckpt, "format_version": 1, "state_dict": old_state}, tmp_path / "old.pt")
    new, old = load_trained(tmp_path / "new" / "ckpt.pt", device="cpu"), load_trained(tmp_path / "old.pt", device="cpu")
    with torch.no_grad():
        assert torch.equal(new.model(new.data), old.model(old.data))
    torch.save({**ckpt, "format_version": 2, "state_dict": old_state}, tmp_path / "v2.pt")  # format 2 is never renamed
    with pytest.raises(FixptError, match="do not fit"):
        load_trained(tmp_path / "v2.pt", device="cpu")
