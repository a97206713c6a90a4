r"""Step-based DDPM training (paper, appendix B.1), resumable and data-parallel.

Each step draws a global batch of B images, one timestep :math:`t \sim U\{0, \dots, T-1\}` and one
noise :math:`\epsilon \sim N(0, I)` per image, and minimises
:math:`\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon, t) \|^2`
(mean over pixels and images) with AdamW (betas 0.95, 0.999, eps 1e-8), the learning rate rising
linearly over the warm-up steps, :math:`\eta_s = \eta \min(1, (s + 1) / s_{warm})`. An exponential
moving average of the weights, :math:`\bar\theta \leftarrow d_s \bar\theta + (1 - d_s) \theta` with
:math:`d_s = \min(d, (1 + s) / (10 + s))`, is what samples and is stored in ``ckpt.pt``.

Determinism and resumption: every random draw of training (data order, timesteps, noise) comes
from one ``torch.Generator`` seeded by ``seed``; ``train_state.pt``, written atomically every
``ckpt_every`` steps, holds the weights, the EMA, AdamW's moments, the LR schedule, the step, that
generator, the data order and the global RNG states. A run killed at any moment and continued with
``--resume DIR`` therefore repeats the uninterrupted run's loss curve.

Data parallel (``torchrun --nproc-per-node N -m fixpt train ddpm ...``): every rank draws the same
global batch from the same generator and trains on its 1/N slice; DistributedDataParallel averages
the gradients, so N processes compute the one-process update with the same global batch (up to
float summation order). NCCL on GPUs, gloo on CPUs; rank 0 alone writes files and logs.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import from_dict, to_dict
from ..device import resolve_device
from ..errors import DivergenceError, FixptError
from ..tracking import NullTracker, RunLog, TrackerSpec, flatten
from ..training.parts import autocast
from ..training.resume import STATE_FILE, read_state, resumed_configs, rng_states, set_rng_states
from ..training.rundir import CKPT, RunDir
from .data import ImageGenerationDataConfig, load_images
from .model import DDPM, DDPMConfig

STATE_FORMAT = "fixpt-ddpm-train-state"


@dataclass
class DDPMTrainConfig:
    max_steps: int = field(default=2000, metadata={"min": 1, "help": "optimizer steps (the paper: 200000)"})
    batch_size: int = field(default=64, metadata={"min": 1, "help": "global batch (split over DDP processes)"})
    lr: float = field(default=1e-4, metadata={"above": 0, "help": "AdamW learning rate after warm-up"})
    weight_decay: float = field(default=1e-6, metadata={"min": 0, "help": "AdamW weight decay"})
    warmup_steps: int = field(default=500, metadata={"min": 1, "help": "linear learning-rate warm-up steps"})
    ema_decay: float = field(default=0.999, metadata={"min": 0, "below": 1, "help": "EMA decay d of the sampling weights"})
    seed: int = field(default=0, metadata={"min": 0, "help": "seed of the weights and of every training draw"})
    ckpt_every: int = field(default=500, metadata={"min": 1, "help": "write train_state.pt every this many steps"})
    log_every: int = field(default=50, metadata={"min": 1, "help": "loss-curve window and progress update, in steps"})
    eval_timesteps: int = field(default=20, metadata={"min": 2, "help": "timesteps of the per-timestep test loss curve"})
    samples: int = field(default=256, metadata={"min": 0, "help": "images sampled after training for the quality score and FID (0: none)"})
    sample_steps: int = field(default=0, metadata={"min": 0, "help": "denoising steps of those samples (0: T)"})
    fid_weights: str = field(default="", metadata={"help": "Inception weights file (torch-fidelity's pt_inception-2015-12-05) for real FID"})
    amp: bool = field(default=False, metadata={"help": "bf16 autocast on CUDA (measure first: benchmarks/ddpm.py)"})
    channels_last: bool = field(default=False, metadata={"help": "channels-last memory format on CUDA"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the UNet"})
    resume: str = field(default="", metadata={"help": "continue the run in this folder from its train_state.pt"})


# ---------------------------------------------------------------- distributed context


@dataclass
class Dist:
    world: int = 1
    rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            value = value.detach().clone()
            torch.distributed.all_reduce(value)
            value /= self.world
        return value


def setup_dist(device: str) -> Dist:
    """One process, or the torchrun process group named by WORLD_SIZE / RANK / LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world == 1:
        return Dist(1, 0, dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(world, rank, dev)


# ---------------------------------------------------------------- the data order


class BatchOrder:
    """Epochs of random permutations of the training set, cut into batches of ``size`` indices (a
    batch may span two epochs); the permutation and the position are part of the resumable state."""

    def __init__(self, n: int, size: int, gen: torch.Generator):
        self.n, self.size, self.gen = n, size, gen
        self.perm, self.pos = torch.randperm(n, generator=gen), 0

    def next(self) -> torch.Tensor:
        out = []
        need = self.size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.perm, self.pos = state["perm"], int(state["pos"])


# ---------------------------------------------------------------- the loop


def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(ema, params, 1.0 - decay)


def _resumed_configs(state: dict, model_cfg: dict, data_cfg: dict, train_cfg: dict) -> tuple[dict, dict, dict]:
    """The stored configs (:func:`fixpt.training.resume.resumed_configs`; max_steps may grow)."""
    given = {"model": (model_cfg, to_dict(DDPMConfig())), "data": (data_cfg, to_dict(ImageGenerationDataConfig())),
             "train": (train_cfg, to_dict(DDPMTrainConfig()))}
    cfgs = resumed_configs(state, given, "max_steps")
    return cfgs["model"], cfgs["data"], cfgs["train"]


def train_ddpm(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, *, out: str | Path | None = None,
               device: str = "auto", on_epoch: Callable[[int, dict], None] | None = None, save_ckpt: bool = True,
               tracker: TrackerSpec | None = None) -> dict:
    """Train (or, with ``resume``, continue) a DDPM; write ``train_state.pt`` every ``ckpt_every`` steps and a
    ``history.csv`` row (and a tracker entry) every ``log_every`` steps, then ``ckpt.pt`` (EMA weights),
    ``samples.png`` and ``metrics.json`` (last). Returns the metrics."""
    state = None
    if train_cfg.get("resume", ""):
        state = read_state(train_cfg["resume"], STATE_FORMAT, "fixpt train ddpm")
        model_cfg, data_cfg, train_cfg = _resumed_configs(state, model_cfg, data_cfg, train_cfg)
        out = out or train_cfg["resume"]
    run = _DDPMRun(name, model_cfg, data_cfg, train_cfg, RunDir(out), device)
    run.log = RunLog.open(run.folder if run.dist.main else RunDir(None), tracker if run.dist.main else None, name, "step")
    if state is not None:
        run.restore(state)
    start = time.perf_counter()
    with run.log:
        run.log.start(flatten({"model": to_dict(run.mcfg), "data": to_dict(run.dcfg), "train": to_dict(run.tcfg)}),
                      {"model": name, "task": "image-generation"}, *((run.history(state), state.get("tracker", "")) if state else ()))
        run.steps(on_epoch)
        if run.step % run.tcfg.ckpt_every:
            run.write_state()
        metrics = run.finish(time.perf_counter() - start, save_ckpt)
    if run.dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


class _DDPMRun:
    """One DDPM training run: init (configs, data, model, AdamW, EMA, the generator of every draw), restore
    (from ``train_state.pt``), steps, and finish (EMA model evaluated, ``ckpt.pt`` and ``metrics.json``)."""

    def __init__(self, name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, folder: RunDir, device: str):
        self.name, self.folder = name, folder
        self.mcfg = from_dict(DDPMConfig, model_cfg, what="ddpm config")
        self.dcfg = from_dict(ImageGenerationDataConfig, data_cfg, what="data config")
        self.tcfg = tcfg = from_dict(DDPMTrainConfig, train_cfg, what="train config")
        self.dist = setup_dist(device)
        if tcfg.batch_size % self.dist.world:
            raise FixptError(f"batch_size={tcfg.batch_size} must be a multiple of the {self.dist.world} processes")
        self.dev = self.dist.device
        self.cuda = self.dev.type == "cuda"
        random.seed(tcfg.seed)
        torch.manual_seed(tcfg.seed)
        self.data = load_images(self.dcfg)
        self.model = DDPM(self.mcfg, self.data.shape).to(self.dev)
        if self.cuda and tcfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.params = list(self.model.unet.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=tcfg.lr, betas=(0.95, 0.999), eps=1e-8, weight_decay=tcfg.weight_decay,
                                     **({"fused": True} if self.cuda else {}))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / tcfg.warmup_steps))
        self.ema = [p.detach().clone() for p in self.params]
        self.gen = torch.Generator().manual_seed(tcfg.seed)  # data order, timesteps and noise: identical on every rank
        self.order = BatchOrder(len(self.data.train), tcfg.batch_size, self.gen)
        self.losses: list[float] = []
        self.step = 0
        self.log = RunLog(RunDir(None), NullTracker(), "step")  # history.csv and the tracker: set by train_ddpm

    def restore(self, state: dict) -> None:
        self.model.unet.load_state_dict(state["model_state"])
        for e, v in zip(self.ema, state["ema_state"]):
            e.copy_(v)
        self.opt.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["lr_schedule"])
        self.gen.set_state(state["generator"])
        self.order.load_state_dict(state["order"])
        self.losses = state["losses"].tolist()
        self.step = int(state["step"])
        set_rng_states(state["rng"])

    def history(self, state: dict) -> list[dict]:
        """The ``history.csv`` rows as of a saved state (a state from before history.csv: rebuilt from its losses)."""
        if "history" in state:
            return state["history"]
        size = self.tcfg.log_every
        return [{"step": s, "train_loss": sum(self.losses[s - size:s]) / size} for s in range(size, self.step + 1, size)]

    def write_state(self) -> None:
        if self.folder.path is None or not self.dist.main:
            return
        payload = {"format": STATE_FORMAT, "version": 1, "model_name": self.name, "model": to_dict(self.mcfg),
                   "data": to_dict(self.dcfg), "train": to_dict(self.tcfg), "step": self.step,
                   "model_state": {k: v.detach().cpu() for k, v in self.model.unet.state_dict().items()},
                   "ema_state": [e.detach().cpu() for e in self.ema], "optimizer": self.opt.state_dict(),
                   "lr_schedule": self.schedule.state_dict(), "generator": self.gen.get_state(), "order": self.order.state_dict(),
                   "losses": torch.tensor(self.losses, dtype=torch.float64), "rng": rng_states(),
                   "history": self.log.rows, "tracker": self.log.ref}
        self.folder.write_state(STATE_FILE, payload)

    def _network(self):
        net = self.model.unet
        if self.dist.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[self.dev.index] if self.cuda else None)
        return torch.compile(net) if self.tcfg.compile else net

    def _batch(self, shard: slice):
        idx = self.order.next()
        x0 = self.data.train[idx]
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.mcfg.timesteps, (len(idx),), generator=self.gen)
        x0, noise, t = (v[shard].to(self.dev, non_blocking=True) for v in (x0, noise, t))
        if self.cuda and self.tcfg.channels_last:
            x0, noise = (v.contiguous(memory_format=torch.channels_last) for v in (x0, noise))
        return x0, noise, t

    def steps(self, on_epoch: Callable[[int, dict], None] | None) -> None:
        tcfg, dist = self.tcfg, self.dist
        net = self._network()
        cast = autocast(self.dev, tcfg.amp)
        shard = slice(dist.rank * tcfg.batch_size // dist.world, (dist.rank + 1) * tcfg.batch_size // dist.world)
        self.model.train()
        while self.step < tcfg.max_steps:
            x0, noise, t = self._batch(shard)
            with cast():
                pred = net(self.model.add_noise(x0, noise, t), t).sample
            loss = F.mse_loss(pred.float(), noise)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.schedule.step()
            self.step += 1
            ema_update(self.ema, self.params, min(tcfg.ema_decay, (1 + self.step) / (10 + self.step)))
            value = float(dist.mean(loss.detach()))
            if not math.isfinite(value):
                where = self.folder / STATE_FILE if self.folder.path is not None else "no folder"
                raise DivergenceError(f"the DDPM training loss became {value} at step {self.step}; lower --lr (the last good state is in {where})")
            self.losses.append(value)
            logged = self.step % tcfg.log_every == 0 or self.step == tcfg.max_steps
            if logged:  # the history row before the state that records it
                window = self.losses[-tcfg.log_every:]
                self.log.row(self.step, {"train_loss": sum(window) / len(window)})
            if self.step % tcfg.ckpt_every == 0:
                self.write_state()
            if logged and on_epoch is not None:
                on_epoch(self.step, {"train_loss": self.log.rows[-1]["train_loss"]})

    def finish(self, seconds: float, save_ckpt: bool) -> dict:
        from .metrics import evaluate_ddpm

        ema_model = copy.deepcopy(self.model).eval()
        for p, e in zip(ema_model.unet.parameters(), self.ema):
            p.data.copy_(e)
        last = self.losses[-self.tcfg.log_every:]
        metrics = {"model": self.name, "task": "image-generation", "rank": self.dist.rank, "world_size": self.dist.world,
                   "steps": self.step, "seconds": seconds, "parameters": sum(p.numel() for p in self.params), "device": str(self.dev),
                   "timesteps": self.mcfg.timesteps, "train_loss": sum(last) / len(last), "loss_curve": _windows(self.losses, self.tcfg.log_every)}
        if not self.dist.main:
            return metrics
        metrics.update(evaluate_ddpm(ema_model, self.data, self.dcfg, self.tcfg, self.folder.path))
        if save_ckpt:
            self.folder.write_checkpoint(model=self.name, config=to_dict(self.mcfg), data=to_dict(self.dcfg),
                                         state_dict=ema_model.state_dict(), train=to_dict(self.tcfg), task="image-generation",
                                         metrics={k: v for k, v in metrics.items() if k != "loss_curve"})
        self.folder.write_metrics(metrics)
        self.log.finish({k: v for k, v in metrics.items() if k != "loss_curve"}, self.folder / CKPT if save_ckpt and self.folder.path else None)
        return metrics


def _windows(losses: list[float], size: int) -> list[list[float]]:
    """[last step of the window, mean loss over it] for each window of ``size`` steps."""
    return [[min(i + size, len(losses)), sum(losses[i:i + size]) / len(losses[i:i + size])] for i in range(0, len(losses), size)]
