r"""The ``ddpm`` model: diffusers' ``UNet2DModel`` as the noise predictor :math:`\epsilon_\theta(x_t, t)` and
``DDPMScheduler(num_train_timesteps=T)`` as the noise schedule (paper, section 4 and appendix B.1).

Forward process :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon`,
:math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`; the reverse process, run by :mod:`.sampling`,
maps :math:`x_t \mapsto x_{t-1}` T times: the number of diffusion steps is the number of iterations.

Sizes (``--size``):

- ``paper``: appendix B.1. Channels 128 at the input convolution, then five down blocks of
  (128, 256, 256, 512, 512) channels, two ResNet blocks each, self-attention in the 4th down
  block and the mirrored 2nd up block; 111.0 M parameters (111,029,507 for 3-channel images).
  It downsamples four times: images need a side that 16 divides (``--resolution 16`` for
  digits; CIFAR-10's 32 as it is).
- ``small``: for 2 CPU cores in minutes. (32, 64, 64) channels, one ResNet block per level,
  attention at the middle level, GroupNorm of 8 groups; 1.1 M parameters; a side that 4 divides.

The beta schedule is diffusers' default, linear from 1e-4 to 0.02 over T steps whatever T is (the
setup of the diffusers DDPM example the paper used). At small T the last step is therefore not
pure noise: :math:`\bar\alpha_T` is 0.36 at T = 100, 0.018 at T = 200 and 4e-5 at T = 1000, and
sampling starts from N(0, I) all the same; ``--beta-schedule squaredcos_cap_v2`` reaches
:math:`\bar\alpha_T \approx 0` at every T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from .views import DIFFUSION_VIEW

SIZES = {
    "small": dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
                  down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
    "paper": dict(block_out_channels=(128, 256, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                  down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D")),
}
BETA_SCHEDULES = ("linear", "squaredcos_cap_v2")


@dataclass
class DDPMConfig:
    size: str = field(default="small", metadata={"choices": tuple(SIZES), "help": "UNet size: small (CPU, minutes) or paper (appendix B.1)"})
    timesteps: int = field(default=1000, metadata={"min": 2, "help": "T, the number of diffusion steps the model is trained with"})
    beta_schedule: str = field(default="linear", metadata={"choices": BETA_SCHEDULES, "help": "noise schedule (linear: diffusers' default, 1e-4 to 0.02)"})
    clip_sample: bool = field(default=True, metadata={"help": "clip the predicted x0 to [-1, 1] in each ancestral reverse step (diffusers' default; iterate's DDIM never clips)"})

    def validate(self) -> None:
        if self.timesteps < 2:
            raise FixptError(f"timesteps={self.timesteps} must be >= 2")


def unet_config(size: str, channels: int, side: int) -> dict:
    levels = len(SIZES[size]["block_out_channels"])
    factor = 2 ** (levels - 1)
    if side % factor:
        raise FixptError(f"the {size} UNet halves the image {levels - 1} times, so the image side must be a multiple of {factor}; "
                         f"got {side}: pass --resolution {max(factor, side + factor - side % factor)}")
    return dict(sample_size=side, in_channels=channels, out_channels=channels, **SIZES[size])


def make_scheduler(cfg: DDPMConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.timesteps, beta_schedule=cfg.beta_schedule, clip_sample=cfg.clip_sample,
                         timestep_spacing="trailing")  # n sampling steps start at t = T - 1 (see fixpt.diffusion.sampling)


@register("ddpm", config=DDPMConfig, task="image-generation", view=DIFFUSION_VIEW,
          example={"timesteps": 20, "max_steps": 4, "batch_size": 8, "warmup_steps": 2, "ckpt_every": 2, "log_every": 1,
                   "samples": 0, "eval_timesteps": 3})
class DDPM(nn.Module):
    """Denoising diffusion (diffusers UNet2DModel + DDPMScheduler); the diffusion steps are the iterations."""

    def __init__(self, cfg: DDPMConfig, in_dim: tuple[int, int], out_dim: int | None = None):
        super().__init__()
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise FixptError("the ddpm model needs diffusers, a dependency of fixpt that is missing here: pip install diffusers") from None
        channels, side = in_dim
        self.cfg = cfg
        self.unet = UNet2DModel(**unet_config(cfg.size, channels, side))
        self.scheduler = make_scheduler(cfg)

    @property
    def timesteps(self) -> int:
        return self.cfg.timesteps

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`\epsilon_\theta(x_t, t)`, the predicted noise."""
        return self.unet(x_t, t).sample

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon`"""
        abar = self.scheduler.alphas_cumprod.to(x0.device, torch.float64)[t].to(x0.dtype).view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
