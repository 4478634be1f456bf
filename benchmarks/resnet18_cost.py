"""Training cost of the CIFAR ResNet-18 (width 1 and a reduced width) relative to the 6n+2 ResNet-32.

For each network: images/s of a forward + backward pass (cross-entropy on random 32x32 images and labels,
train mode, gradients zeroed between steps, no optimiser step) at ``--batch-size`` on ``--threads`` CPU
threads, and the FLOPs of that pass per image (:mod:`torch.utils.flop_counter`, a multiply-add counts 2).
Each network first runs ``--warmup`` untimed steps; ``--rounds`` alternates the networks and keeps each one's
best round (the machine may be shared). Prints one line per network with its ratio to ResNet-32.

Usage::

    .venv/bin/python benchmarks/resnet18_cost.py                  # batch 64, one thread, widths 1 and 0.25
    .venv/bin/python benchmarks/resnet18_cost.py --steps 5 --rounds 2 --widths 1 0.5 0.25 --noskip
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import UserError, run_cli
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.models.resnet18 import ResNet18Config, build_resnet18

REFERENCE = "residual-32"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per network and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best round counts")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25], help="ResNet-18 width multipliers")
    parser.add_argument("--noskip", action="store_true", help="also time each ResNet-18 without skips")
    args = parser.parse_args()
    for key in ("batch_size", "threads", "steps", "rounds"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} {getattr(args, key)} is too small: use a positive number")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup} is negative: use 0 or more")
    return args


def networks(args: argparse.Namespace) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    nets: dict[str, nn.Module] = {REFERENCE: build_cifar_net(CifarNetConfig("residual", 32))}
    for width in args.widths:
        for skip in (True, False) if args.noskip else (True,):
            config = ResNet18Config(skip=skip, width=width)  # a bad width is a one-line UserError
            nets[config.name] = build_resnet18(config)
    return nets


def step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()


def flops_per_image(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter:
        step(model, images[:2], labels[:2])
    return counter.get_total_flops() / 2


def time_steps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Images per second over ``steps`` forward + backward passes."""
    start = time.perf_counter()
    for _ in range(steps):
        step(model, images, labels)
    return steps * images.shape[0] / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (args.batch_size,), generator=gen)
    nets = networks(args)
    for model in nets.values():
        model.train()
        for _ in range(args.warmup):
            step(model, images, labels)
    best = dict.fromkeys(nets, 0.0)
    for _ in range(args.rounds):
        for name, model in nets.items():
            best[name] = max(best[name], time_steps(model, images, labels, args.steps))
    print(f"forward+backward, batch {args.batch_size}, {args.threads} thread(s), best of {args.rounds} round(s)")
    print(f"{'network':<24}{'parameters':>12}{'GFLOP/image':>13}{'images/s':>10}{'time vs ' + REFERENCE:>22}")
    for name, model in nets.items():
        params = sum(p.numel() for p in model.parameters())
        gflop = flops_per_image(model, images, labels) / 1e9
        ratio = best[REFERENCE] / best[name]
        print(f"{name:<24}{params:>12,}{gflop:>13.3f}{best[name]:>10.1f}{ratio:>21.2f}x")


if __name__ == "__main__":
    run_cli(main)
