"""The diffusion family: the ``ddpm`` model, its task and its view (denoising steps as the iterations)."""

from . import model, task, views  # noqa: F401  (importing registers them)
