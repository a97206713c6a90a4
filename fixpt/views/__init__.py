"""Views of trained models for ``iterate`` and ``check-contraction`` (:mod:`fixpt.views.base`)."""

from .base import TextTable, Trained, View, ViewResult
from .fixed_point import FixedPointView

FIXED_POINT_VIEW = FixedPointView()

__all__ = ["View", "ViewResult", "TextTable", "Trained", "FixedPointView", "FIXED_POINT_VIEW"]
