"""The sweep presets shipped inside the package (``fixpt/presets/*.yaml``, installed with it), found by name:
``fixpt sweep table5`` is ``fixpt sweep <this folder>/table5.yaml``. A path to a YAML file of one's own works
everywhere a name does, and an existing file wins over a built-in name."""

from __future__ import annotations

from pathlib import Path

from ..errors import FixptError

FOLDER = Path(__file__).resolve().parent


def builtin_presets() -> list[str]:
    """The names of the shipped presets, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def find_preset(preset: str | Path) -> Path:
    """The YAML file ``preset`` names: an existing file as given, else the built-in preset of that name
    (``table5`` or ``table5.yaml``, with no folder); anything else is an error listing the built-in names."""
    path = Path(preset)
    if path.is_file():
        return path
    builtin = FOLDER / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and builtin.is_file():  # a bare name; a path with a folder is only ever that file
        return builtin
    raise FixptError(f"preset {str(preset)!r} is neither a file nor a built-in preset; built-in presets (by name): "
                     f"{', '.join(builtin_presets())} (e.g. fixpt sweep table5)")
