"""Training configs: the options of ``fixpt train`` that are neither the model's nor the data's."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    epochs: int = field(default=200, metadata={"min": 1, "help": "training epochs (full batch)"})
    lr: float = field(default=0.01, metadata={"above": 0, "help": "Adam learning rate"})
    weight_decay: float = field(default=5e-4, metadata={"min": 0, "help": "Adam weight decay"})
    patience: int = field(default=100, metadata={"min": 1, "help": "stop after this many epochs without a better validation score"})
    seed: int = field(default=0, metadata={"min": 0, "help": "seed of the model's initialisation and dropout"})
    param_budget: int = field(default=0, metadata={"min": 0, "help": "if > 0: set hidden to the widest that keeps trainable parameters <= this"})
    batch_size: int = field(default=0, metadata={"min": 0, "help": "training samples per step for sample tasks (0: the whole training set)"})
    ckpt_every: int = field(default=10, metadata={"min": 1, "help": "write the resumable train_state.pt every this many epochs"})
    resume: str = field(default="", metadata={"help": "continue the killed run in this folder from its train_state.pt"})
    jac_penalty: float = field(default=0.0, metadata={"min": 0, "help": "weight lambda of the Frechet-derivative penalty lambda * relu(||J_P(z*)|| - jac_target)^2 (0: off; models solved by fixpt.solve)"})
    jac_norm: str = field(default="spectral", metadata={"choices": ("spectral", "frobenius"), "help": "norm of the penalty: spectral (||J||_2, power iteration) or frobenius (||J||_F / sqrt(n), Hutchinson; not a bound on ||J||_2)"})
    jac_target: float = field(default=0.9, metadata={"min": 0, "help": "the penalty acts only above this norm"})
    jac_steps: int = field(default=1, metadata={"min": 1, "max": 100, "help": "power steps (spectral) or probes (frobenius) per training step; the power vector is warm-started"})
    jac_at: str = field(default="train", metadata={"choices": ("train", "eval"), "help": "where --jac-penalty takes J: train (the training pass's solution) or eval (the evaluation-mode solve of the batch, which check-contraction examines; one more solve per step)"})
    state_norm: str = field(default="l2", metadata={"choices": ("l2", "degree"), "help": "norm of the state in which --jac-penalty measures ||J||: l2, or degree (||D^1/2 z||_2 over nodes, under which mean aggregation on an undirected graph has norm 1; graph models)"})
    op_lr_scale: float = field(default=1.0, metadata={"above": 0, "help": "multiply --lr by this for the weights of the iterated operator (those --jac-penalty acts on; models solved by fixpt.solve); 0.1 keeps a penalised SAGE PIGN's block at contraction scale (docs/results.md)"})
    warm_start: bool = field(default=False, metadata={"help": "start each solve from the previous epoch's solution of the same data (models with a tolerance stop)"})

    @property
    def use_amp(self) -> bool:
        """bf16 autocast of the training steps on CUDA (a field of the configs that offer it)."""
        return False


@dataclass
class FieldTrainConfig(TrainConfig):
    """Training defaults for the field tasks (transformers on Navier-Stokes): minibatches, a smaller step."""

    epochs: int = field(default=100, metadata={"min": 1, "help": "training epochs"})
    lr: float = field(default=1e-3, metadata={"above": 0, "help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"min": 0, "help": "Adam weight decay"})
    patience: int = field(default=30, metadata={"min": 1, "help": "stop after this many epochs without a better validation score"})
    batch_size: int = field(default=20, metadata={"min": 0, "help": "training samples per step (0: the whole training set)"})
    ckpt_every: int = field(default=1, metadata={"min": 1, "help": "write the resumable train_state.pt every this many epochs"})
    amp: bool = field(default=True, metadata={"help": "bf16 autocast for the training steps on CUDA (ignored on the CPU)"})

    @property
    def use_amp(self) -> bool:
        return self.amp
