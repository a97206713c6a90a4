"""The package version (a leaf module: the checkpoint writer records it)."""

__version__ = "0.1.0"
