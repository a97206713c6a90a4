"""The one device decision (a leaf module: it imports nothing of fixpt but the errors)."""

from __future__ import annotations

import torch

from .errors import FixptError


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; ``cuda`` without a visible device is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise FixptError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise FixptError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)
