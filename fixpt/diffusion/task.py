"""The diffusion family's task: unconditional image generation, trained by its own step-based loop."""

from __future__ import annotations

from ..registry import register_task
from ..tasks.base import FitRequest, InputSpec, Metric, Task
from .data import ImageGenerationDataConfig, load_images
from .train_loop import DDPMTrainConfig, train_ddpm


@register_task
class ImageGeneration(Task):
    """Unconditional image generation by denoising diffusion (:mod:`fixpt.diffusion`): trained by its
    own step-based loop (:func:`~fixpt.diffusion.train_loop.train_ddpm`), scored by the area under the
    per-timestep test loss (lower is better), the quality score and FID."""

    name = "image-generation"
    data_config = ImageGenerationDataConfig
    train_config = DDPMTrainConfig
    metric = Metric("loss_area", higher_is_better=False)

    def load(self, data_config):
        return load_images(data_config)

    def input_spec(self, data) -> InputSpec:
        return InputSpec(data.shape, None)

    def length(self, train: dict) -> int:
        return int(train["max_steps"])

    def fit(self, spec, request: FitRequest) -> dict:
        return train_ddpm(spec.name, request.model_config, request.data, request.train, out=request.out,
                          device=request.device, on_epoch=request.on_epoch, save_ckpt=request.save_ckpt, tracker=request.tracker)
