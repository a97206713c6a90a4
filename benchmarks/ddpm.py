"""Benchmark: DDPM training-step time of the diffusers UNet under the CUDA options of `fixpt train ddpm`.

    python benchmarks/ddpm.py [--device cuda] [--size paper] [--batch 64] [--steps 30] [--compile]

One process, one UNet, the same inputs for every variant; each variant is timed over ``--steps``
steps after warm-up (synchronised), and reported as ms per step and as a ratio to the baseline, a
plain fp32 loop with PyTorch's default (foreach) AdamW:

- ``fused``: fused AdamW (``fixpt train ddpm`` uses it on CUDA),
- ``fused + channels-last``, ``fused + bf16``, ``fused + bf16 + channels-last``,
- ``fused + compile`` with ``--compile`` (torch.compile; the compile time is reported apart).

Also ``--model vit``: the iterative ViT's training step (paper size, Navier-Stokes shapes: 10 input
frames, 64 x 64, batch 20, n_iter 3), fp32 against bf16 autocast, the question `fixpt train vit`'s
``--amp`` default rests on.
"""

from __future__ import annotations

import argparse
import copy
import contextlib
import time

import torch
import torch.nn.functional as F


def _time(step, steps: int, device: torch.device) -> float:
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def ddpm_variants(args, device):
    from fixpt.diffusion.model import DDPM, DDPMConfig

    torch.manual_seed(0)
    channels, side = (3, 32) if args.size == "paper" else (1, 8)
    base = DDPM(DDPMConfig(size=args.size), (channels, side)).to(device)
    x0 = torch.randn(args.batch, channels, side, side, device=device).clamp(-1, 1)
    noise = torch.randn_like(x0)
    t = torch.randint(0, 1000, (args.batch,), device=device)
    x_t = base.add_noise(x0, noise, t)
    cuda = device.type == "cuda"
    variants = [("fp32, foreach AdamW (baseline)", dict(fused=False, cl=False, bf16=False, compile=False))]
    if cuda:
        variants += [("fp32, fused AdamW", dict(fused=True, cl=False, bf16=False, compile=False)),
                     ("fp32, fused, channels-last", dict(fused=True, cl=True, bf16=False, compile=False)),
                     ("bf16 autocast, fused", dict(fused=True, cl=False, bf16=True, compile=False)),
                     ("bf16 autocast, fused, channels-last", dict(fused=True, cl=True, bf16=True, compile=False))]
        if args.compile:
            variants.append(("fp32, fused, torch.compile", dict(fused=True, cl=False, bf16=False, compile=True)))
    for name, v in variants:
        model = copy.deepcopy(base)
        xin, target = x_t, noise
        if v["cl"]:
            model.to(memory_format=torch.channels_last)
            xin = x_t.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6,
                                **({"fused": True} if v["fused"] else {"foreach": True} if cuda else {}))
        net = model.unet
        compile_s = None
        if v["compile"]:
            net = torch.compile(net)
            start = time.perf_counter()
            F.mse_loss(net(xin, t).sample.float(), target).backward()
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - start
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if v["bf16"] else contextlib.nullcontext

        def step():
            with autocast():
                pred = net(xin, t).sample
            loss = F.mse_loss(pred.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        yield name, _time(step, args.steps, device), compile_s


def vit_variants(args, device):
    from fixpt.data.fields import FieldDims
    from fixpt.models.vit import IterativeViT, ViTConfig

    torch.manual_seed(0)
    model = IterativeViT(ViTConfig(size="paper", n_iter=3), FieldDims(10, 64), 10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    from fixpt.data.fields import FieldData

    n = args.batch
    x, y = torch.randn(n, 10, 64, 64, device=device), torch.randn(n, 10, 64, 64, device=device)
    ones = torch.ones(n, dtype=torch.bool, device=device)
    batch = FieldData(x, y, ones, ones, ones)
    for name, bf16 in (("fp32 (baseline)", False), ("bf16 autocast", True)):
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

        def step():
            with autocast():
                loss = F.mse_loss(model(batch).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        yield name, _time(step, args.steps, device), None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help='cuda or cpu (default: cuda when present)')
    p.add_argument("--model", default="ddpm", choices=("ddpm", "vit"), help='ddpm: the UNet training step; vit: the iterative ViT step, fp32 against bf16 autocast')
    p.add_argument("--size", default="paper", choices=("small", "paper"), help='DDPM size: small (8 x 8 digits UNet) or paper (32 x 32 CIFAR-10 UNet)')
    p.add_argument("--batch", type=int, default=64, help='images per training step')
    p.add_argument("--steps", type=int, default=30, help='timed steps per variant (after warm-up)')
    p.add_argument("--compile", action="store_true", help='add the torch.compile variant (its compile time reported apart)')
    args = p.parse_args()
    device = torch.device(args.device)
    rows = list((ddpm_variants if args.model == "ddpm" else vit_variants)(args, device))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    what = f"DDPM UNet ({args.size})" if args.model == "ddpm" else "iterative ViT (paper size, n_iter 3)"
    print(f"{what} training step, batch {args.batch}, {name}, torch {torch.__version__}\n")
    print("| variant | ms / step | speed vs baseline |\n|---|---|---|")
    base = rows[0][1]
    for label, ms, compile_s in rows:
        extra = f" (compile {compile_s:.0f} s)" if compile_s else ""
        print(f"| {label}{extra} | {ms:.1f} | {base / ms:.2f}x |")


if __name__ == "__main__":
    main()
