"""Overhead of recording per-layer gradient statistics during training (``train_classifier.grad_every``).

For each network and each ``k`` in ``--every``: :func:`cnnlab.training.fit` on the same synthetic 32x32 data
from the same initial weights, once without recording (``grad_every: 0``) and once recording every k-th step,
in alternating rounds (the order reversed every round); the time compared is :attr:`TrainResult.train_seconds`
(the training steps, evaluation excluded), the fastest round of each (on a shared machine the others measure
the neighbours). Prints per network and k: that end-to-end ratio with / without recording - 1, and the
in-run share: the seconds spent inside the recording (``GradScaler.unscale_`` + :meth:`EpochGradients.record`,
timed around each call; synchronous on the CPU) over the training seconds of the same run, the fastest round's
-- immune to load drift between runs, the number to trust on a busy machine. Also checks that the recording
left the trained weights unchanged (bit for bit, on the CPU).

Usage::

    .venv/bin/python benchmarks/gradient_recording.py                     # residual-20 and ResNet-18 (width 0.25)
    .venv/bin/python benchmarks/gradient_recording.py --every 1 10 --rounds 5 --steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import time

import torch
from torch import nn

import cnnlab.gradient_recording as recording
from cnnlab.augment import make_prepare
from cnnlab.errors import UserError, run_cli
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.models.resnet18 import ResNet18Config, build_resnet18
from cnnlab.training import TrainConfig, fit


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, nargs="+", default=[1, 4, 16], help="values of grad_every to time")
    parser.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median counts")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--models", nargs="+", default=["residual-20", "resnet18-w0.25", "resnet18-noskip-w0.25"],
                        help="residual-<6n+2>, plain-<6n+2>, resnet18[-noskip]-w<width>")
    args = parser.parse_args()
    for key in ("steps", "epochs", "batch_size", "rounds"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} {getattr(args, key)} is too small: use a positive number")
    if any(k < 1 for k in args.every):
        raise UserError(f"--every {args.every}: use values >= 1 (0 is the baseline, always timed)")
    return args


def build(name: str) -> nn.Module:
    """A network by its benchmark name, seeded (every run of the name starts from the same weights)."""
    torch.manual_seed(0)
    parts = name.split("-")
    if parts[0] in ("plain", "residual") and len(parts) == 2 and parts[1].isdigit():
        return build_cifar_net(CifarNetConfig(parts[0], int(parts[1])))
    if parts[0] == "resnet18" and parts[-1].startswith("w"):
        return build_resnet18(ResNet18Config(skip="noskip" not in parts, width=float(parts[-1][1:])))
    raise UserError(f"unknown model {name!r}: use residual-20, plain-32, resnet18-w0.25, resnet18-noskip-w0.5, ...")


spent: list[float] = []  # seconds inside the recording calls of the current run


def timed(method):
    """``method`` wrapped to add its wall-clock seconds to :data:`spent`."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)
    return wrapper


def main() -> None:
    args = parse_args()
    recording.EpochGradients.record = timed(recording.EpochGradients.record)
    torch.amp.GradScaler.unscale_ = timed(torch.amp.GradScaler.unscale_)  # called only on recorded steps
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.steps * args.batch_size
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % 10
    test = train[0][:args.batch_size], train[1][:args.batch_size]  # evaluation is not timed; keep it small
    prepare = make_prepare([0.5] * 3, [0.25] * 3, augment=True, channels_last=True)
    print(f"{args.steps} steps x {args.epochs} epochs at batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"best of {args.rounds} alternating rounds")
    for name in args.models:
        model = build(name)
        ks = [0, *args.every]

        def run(k: int, model: nn.Module = model) -> tuple[float, float, dict]:
            work = copy.deepcopy(model)
            spent.clear()
            cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, device="cpu",
                              show_progress=False, eval_batch_size=args.batch_size, grad_every=k)
            with contextlib.redirect_stdout(io.StringIO()):  # fit's per-epoch lines
                result = fit(work, train, test, cfg, prepare)
            return result.train_seconds, sum(spent), work.state_dict()

        run(0)  # warm-up (allocator, kernels), untimed
        times: dict[int, list[tuple[float, float]]] = {k: [] for k in ks}
        weights: dict[int, dict] = {}
        for r in range(args.rounds):
            for k in ks if r % 2 == 0 else ks[::-1]:  # reversed every other round: no fixed neighbour
                seconds, inside, weights[k] = run(k)
                times[k].append((seconds, inside))
        base = min(seconds for seconds, _ in times[0])
        for k in args.every:
            same = all(torch.equal(weights[0][key], value) for key, value in weights[k].items())
            with_ = min(seconds for seconds, _ in times[k])
            share = min(inside / seconds for seconds, inside in times[k])
            print(f"{name:24s} grad_every={k:<3d} {base:7.2f} s without, {with_:7.2f} s with recording: "
                  f"end to end {100 * (with_ / base - 1):+5.1f} %, in-run share {100 * share:5.2f} % "
                  f"(weights {'identical' if same else 'DIFFER'})", flush=True)


if __name__ == "__main__":
    run_cli(main)
