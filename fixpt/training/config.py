"""Training configs: the options of ``fixpt train`` that are neither the model's nor the data's."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FixptError


@dataclass
class TrainConfig:
    epochs: int = field(default=200, metadata={"help": "training epochs (full batch)"})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=5e-4, metadata={"help": "Adam weight decay"})
    patience: int = field(default=100, metadata={"help": "stop after this many epochs without a better validation score"})
    seed: int = field(default=0, metadata={"help": "seed of the model's initialisation and dropout"})
    param_budget: int = field(default=0, metadata={"help": "if > 0: set hidden to the widest that keeps trainable parameters <= this"})
    batch_size: int = field(default=0, metadata={"help": "training samples per step for sample tasks (0: the whole training set)"})

    def validate(self) -> None:
        if self.epochs < 1:
            raise FixptError(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 0:
            raise FixptError(f"batch_size={self.batch_size} must be >= 0 (0: full batch)")
        if self.param_budget < 0:
            raise FixptError(f"param_budget={self.param_budget} must be >= 0 (0: no budget)")

    @property
    def use_amp(self) -> bool:
        """bf16 autocast of the training steps on CUDA (a field of the configs that offer it)."""
        return False


@dataclass
class FieldTrainConfig(TrainConfig):
    """Training defaults for the field tasks (transformers on Navier-Stokes): minibatches, a smaller step."""

    epochs: int = field(default=100, metadata={"help": "training epochs"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    patience: int = field(default=30, metadata={"help": "stop after this many epochs without a better validation score"})
    batch_size: int = field(default=20, metadata={"help": "training samples per step (0: the whole training set)"})
    amp: bool = field(default=True, metadata={"help": "bf16 autocast for the training steps on CUDA (ignored on the CPU)"})

    @property
    def use_amp(self) -> bool:
        return self.amp
