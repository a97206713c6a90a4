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

import contextlib
import copy
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write, save_checkpoint
from ..config import from_dict, to_dict
from ..errors import DivergenceError, FixptError
from ..device import resolve_device
from .data import ImageGenerationDataConfig, load_images
from .model import DDPM, DDPMConfig

STATE_FILE = "train_state.pt"
STATE_FORMAT = "fixpt-ddpm-train-state"


@dataclass
class DDPMTrainConfig:
    max_steps: int = field(default=2000, metadata={"help": "optimizer steps (the paper: 200000)"})
    batch_size: int = field(default=64, metadata={"help": "global batch (split over DDP processes)"})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate after warm-up"})
    weight_decay: float = field(default=1e-6, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=500, metadata={"help": "linear learning-rate warm-up steps"})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA decay d of the sampling weights"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and of every training draw"})
    ckpt_every: int = field(default=500, metadata={"help": "write train_state.pt every this many steps"})
    log_every: int = field(default=50, metadata={"help": "loss-curve window and progress update, in steps"})
    eval_timesteps: int = field(default=20, metadata={"help": "timesteps of the per-timestep test loss curve"})
    samples: int = field(default=256, metadata={"help": "images sampled after training for the quality score and FID (0: none)"})
    sample_steps: int = field(default=0, metadata={"help": "denoising steps of those samples (0: T)"})
    fid_weights: str = field(default="", metadata={"help": "Inception weights file (torch-fidelity's pt_inception-2015-12-05) for real FID"})
    amp: bool = field(default=False, metadata={"help": "bf16 autocast on CUDA (measure first: benchmarks/ddpm.py)"})
    channels_last: bool = field(default=False, metadata={"help": "channels-last memory format on CUDA"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the UNet"})
    resume: str = field(default="", metadata={"help": "continue the run in this folder from its train_state.pt"})

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "warmup_steps", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise FixptError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise FixptError(f"ema_decay={self.ema_decay} must lie in [0, 1)")
        if self.samples < 0 or self.sample_steps < 0 or self.eval_timesteps < 2:
            raise FixptError("samples and sample_steps must be >= 0 and eval_timesteps >= 2")


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


def _rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in states["python"]))
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def read_state(folder: str | Path) -> dict:
    """``train_state.pt`` of a run folder; every failure is one line naming the fix."""
    path = Path(folder) / STATE_FILE
    if not path.exists():
        raise FixptError(f"--resume {folder}: no {STATE_FILE} there; resume a folder written by `fixpt train ddpm` "
                         "(it appears after the first --ckpt-every steps)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways
        raise FixptError(f"{path} is not readable ({type(e).__name__}); it is damaged: start the run again") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FixptError(f"{path} is not a fixpt DDPM training state; pass the folder of a `fixpt train ddpm` run")
    return state


def _resumed_configs(state: dict, model_cfg: dict, data_cfg: dict, train_cfg: dict) -> tuple[dict, dict, dict]:
    """The stored configs; an option given now that differs from both its default and the stored
    value is an error (max_steps may grow: that continues a run for longer)."""
    given = {"model": (model_cfg, DDPMConfig()), "data": (data_cfg, ImageGenerationDataConfig()), "train": (train_cfg, DDPMTrainConfig())}
    for section, (values, default) in given.items():
        stored = state[section]
        for key, value in values.items():
            if key in ("resume", "max_steps") or key not in stored:
                continue
            if value != getattr(default, key) and value != stored[key]:
                raise FixptError(f"--{key.replace('_', '-')} {value} conflicts with the run being resumed ({key}={stored[key]}); "
                                 "drop the option to continue that run, or train a new one")
    train = {**state["train"], "resume": train_cfg.get("resume", "")}
    if train_cfg.get("max_steps", DDPMTrainConfig.max_steps) != DDPMTrainConfig.max_steps:
        train["max_steps"] = train_cfg["max_steps"]
    return state["model"], state["data"], train


def train_ddpm(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, *, out: str | Path | None = None,
               device: str = "auto", on_epoch: Callable[[int, dict], None] | None = None, save_ckpt: bool = True,
               task: str | None = None) -> dict:
    """Train (or, with ``resume``, continue) a DDPM; write ``train_state.pt`` every ``ckpt_every`` steps,
    then ``ckpt.pt`` (EMA weights), ``samples.png`` and ``metrics.json`` (last). Returns the metrics."""
    state = None
    resume = train_cfg.get("resume", "")
    if resume:
        state = read_state(resume)
        model_cfg, data_cfg, train_cfg = _resumed_configs(state, model_cfg, data_cfg, train_cfg)
        out = out or resume
    mcfg = from_dict(DDPMConfig, model_cfg, what="ddpm config")
    dcfg = from_dict(ImageGenerationDataConfig, data_cfg, what="data config")
    tcfg = from_dict(DDPMTrainConfig, train_cfg, what="train config")
    dist = setup_dist(device)
    if tcfg.batch_size % dist.world:
        raise FixptError(f"batch_size={tcfg.batch_size} must be a multiple of the {dist.world} processes")
    dev = dist.device
    random.seed(tcfg.seed)
    torch.manual_seed(tcfg.seed)
    data = load_images(dcfg)
    model = DDPM(mcfg, data.shape).to(dev)
    cuda = dev.type == "cuda"
    if cuda and tcfg.channels_last:
        model.to(memory_format=torch.channels_last)
    params = list(model.unet.parameters())
    opt = torch.optim.AdamW(params, lr=tcfg.lr, betas=(0.95, 0.999), eps=1e-8, weight_decay=tcfg.weight_decay,
                            **({"fused": True} if cuda else {}))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / tcfg.warmup_steps))
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(tcfg.seed)  # data order, timesteps and noise: identical on every rank
    order = BatchOrder(len(data.train), tcfg.batch_size, gen)
    losses: list[float] = []
    step = 0
    if state is not None:
        model.unet.load_state_dict(state["model_state"])
        for e, v in zip(ema, state["ema_state"]):
            e.copy_(v)
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["lr_schedule"])
        gen.set_state(state["generator"])
        order.load_state_dict(state["order"])
        losses = state["losses"].tolist()
        step = int(state["step"])
        _set_rng_states(state["rng"])
    net = model.unet
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if cuda else None)
    if tcfg.compile:
        net = torch.compile(net)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and tcfg.amp else contextlib.nullcontext
    shard = slice(dist.rank * tcfg.batch_size // dist.world, (dist.rank + 1) * tcfg.batch_size // dist.world)
    out = Path(out) if out is not None else None

    def write_state() -> None:
        if out is None or not dist.main:
            return
        payload = {"format": STATE_FORMAT, "version": 1, "model_name": name, "model": to_dict(mcfg), "data": to_dict(dcfg),
                   "train": to_dict(tcfg), "step": step, "model_state": {k: v.detach().cpu() for k, v in model.unet.state_dict().items()},
                   "ema_state": [e.detach().cpu() for e in ema], "optimizer": opt.state_dict(), "lr_schedule": schedule.state_dict(),
                   "generator": gen.get_state(), "order": order.state_dict(), "losses": torch.tensor(losses, dtype=torch.float64),
                   "rng": _rng_states()}
        atomic_write(out / STATE_FILE, lambda tmp: torch.save(payload, tmp))

    start = time.perf_counter()
    T = mcfg.timesteps
    model.train()
    while step < tcfg.max_steps:
        idx = order.next()
        x0 = data.train[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, T, (len(idx),), generator=gen)
        x0, noise, t = (v[shard].to(dev, non_blocking=True) for v in (x0, noise, t))
        if cuda and tcfg.channels_last:
            x0, noise = (v.contiguous(memory_format=torch.channels_last) for v in (x0, noise))
        x_t = model.add_noise(x0, noise, t)
        with autocast():
            pred = net(x_t, t).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        step += 1
        ema_update(ema, params, min(tcfg.ema_decay, (1 + step) / (10 + step)))
        value = float(dist.mean(loss.detach()))
        if not math.isfinite(value):
            raise DivergenceError(f"the DDPM training loss became {value} at step {step}; lower --lr "
                                  f"(the last good state is in {out / STATE_FILE if out else 'no folder'})")
        losses.append(value)
        if step % tcfg.ckpt_every == 0:
            write_state()
        if on_epoch is not None and (step % tcfg.log_every == 0 or step == tcfg.max_steps):
            window = losses[-tcfg.log_every:]
            on_epoch(step, {"train_loss": sum(window) / len(window)})
    if step % tcfg.ckpt_every:
        write_state()
    seconds = time.perf_counter() - start

    ema_model = copy.deepcopy(model).eval()
    for p, e in zip(ema_model.unet.parameters(), ema):
        p.data.copy_(e)
    metrics = {"model": name, "task": "image-generation", "rank": dist.rank, "world_size": dist.world,
               "steps": step, "seconds": seconds, "parameters": sum(p.numel() for p in params), "device": str(dev),
               "timesteps": T, "train_loss": sum(losses[-tcfg.log_every:]) / len(losses[-tcfg.log_every:]),
               "loss_curve": _windows(losses, tcfg.log_every)}
    if dist.main:
        from .metrics import evaluate_ddpm

        metrics.update(evaluate_ddpm(ema_model, data, dcfg, tcfg, out))
        if out is not None:
            if save_ckpt:
                save_checkpoint(out / "ckpt.pt", model=name, config=to_dict(mcfg), data=to_dict(dcfg),
                                state_dict=ema_model.state_dict(), train=to_dict(tcfg), task="image-generation",
                                metrics={k: v for k, v in metrics.items() if k != "loss_curve"})
            atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


def _windows(losses: list[float], size: int) -> list[list[float]]:
    """[last step of the window, mean loss over it] for each window of ``size`` steps."""
    return [[min(i + size, len(losses)), sum(losses[i:i + size]) / len(losses[i:i + size])] for i in range(0, len(losses), size)]
