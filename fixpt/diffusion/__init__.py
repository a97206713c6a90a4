"""Denoising diffusion (DDPM) as an iteration: the number of denoising steps is the iteration count.

- :mod:`.data`: images in [-1, 1] (bundled 8 x 8 digits offline, CIFAR-10 from the data root);
- :mod:`.model`: the registered ``ddpm`` model (diffusers' ``UNet2DModel`` + ``DDPMScheduler``);
- :mod:`.train_loop`: step-based training (AdamW, warm-up, EMA, resumable checkpoints, DDP);
- :mod:`.sampling`: ancestral sampling with any number of steps and the reverse-step map's Jacobian;
- :mod:`.metrics`: test loss per timestep and its area, FID, and the digits quality score;
- :mod:`.report`: the Figure 2 / Figure 8 layout of ``fixpt report``.
"""
