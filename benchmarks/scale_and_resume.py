"""Two costs of long runs, measured in one go on random CIFAR-sized images:

(a) **resume state** (:mod:`cnnlab.resume`): seconds to write the per-epoch state of ResNet-56 with
    ``cnnlab.io.save_torch`` (atomic) and its size in bytes, relative to the training time of one CIFAR-10
    epoch (``--epoch-images`` images, 50000 by default) estimated from the measured training images/s;
    both the usual state (the best epoch is the current one) and the largest (an earlier best epoch: a
    second copy of the weights);
(b) **DDP scaling**: training images/s of :func:`cnnlab.training.fit` (its own figure, evaluation
    excluded) with 1 process and with ``--nproc`` CPU processes under torchrun (gloo, threads = cores /
    processes), same global batch, printed as a ratio.

Usage::

    .venv/bin/python benchmarks/scale_and_resume.py                      # defaults: ResNet-56, 512 images
    .venv/bin/python benchmarks/scale_and_resume.py --depth 20 --images 256 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnlab import distributed
from cnnlab.augment import make_prepare
from cnnlab.device import configure_threads
from cnnlab.io import save_torch
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.params.classifiers import model_config
from cnnlab.training import TrainConfig, TrainResult, _resume_state, _snapshot, _Stepper, fit

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def build(depth: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_cifar_net(CifarNetConfig.from_dict({**model_config("residual", depth, "relu-bn"), "num_classes": 10}))


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % 10


def train_speed(args: argparse.Namespace) -> float:
    """Training images/s of fit (rank 0's figure under torchrun)."""
    configure_threads()
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, eval_batch_size=args.batch_size,
                      show_progress=False, device="cpu")
    model = build(args.depth)
    result = fit(model, data(args.images, 1), data(args.batch_size, 2), cfg, make_prepare(MEAN, STD, True, True))
    return result.images_per_sec


def resume_cost(args: argparse.Namespace) -> dict:
    """Seconds and bytes of writing ResNet-``depth``'s resume state (best of ``--repeats``)."""
    cfg = TrainConfig(epochs=2, batch_size=args.batch_size, lr=0.05, show_progress=False, device="cpu")
    model = build(args.depth)
    stepper = _Stepper(model, cfg, make_prepare(MEAN, STD, True, True), None, 1, "bench")
    x, y = data(args.batch_size, 3)
    stepper.step(x, y, 0, torch.Generator().manual_seed(0))  # optimiser state (momentum buffers) exists
    row = {"epoch": 1, "train_loss": 0.0, "train_acc": 0.0, "test_loss": 0.0, "test_acc": 0.0, "lr": 0.0,
           "seconds": 0.0, "images_per_sec": 0.0}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, best_epoch in (("usual", 2), ("largest", 1)):
            result = TrainResult(history=[row, {**row, "epoch": 2}], best_epoch=best_epoch, best_test_acc=0.0)
            state = _resume_state(stepper, {"params": "x"}, result, _snapshot(model), torch.Generator())
            path = Path(tmp) / f"{label}.pt"
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                save_torch(path, state)
                times.append(time.perf_counter() - start)
            out[label] = {"seconds": min(times), "bytes": path.stat().st_size}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=56, help="ResNet depth (6n+2)")
    parser.add_argument("--images", type=int, default=512, help="training images per timed epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the DDP run")
    parser.add_argument("--epoch-images", type=int, default=50000, help="images of a real epoch (CIFAR-10 train)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # one timed fit, in a fresh process (alone or as a torchrun rank)
        speed = train_speed(args)
        if distributed.is_main():
            print(json.dumps({"images_per_sec": speed}))
        return

    argv = [str(Path(__file__).resolve()), "--worker", "--depth", str(args.depth), "--images", str(args.images),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_THREADS"}  # every core, split over the processes

    def run(cmd: list[str]) -> float:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])["images_per_sec"]

    single = run([sys.executable, *argv])
    multi = run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
                 *argv])
    cost = resume_cost(args)
    epoch_seconds = args.epoch_images / single
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"ResNet-{args.depth}, global batch {args.batch_size}, {args.images} images x {args.epochs} epoch(s), "
          f"{cores} cores, torch {torch.__version__}")
    print(f"(a) resume state: training {single:.1f} images/s -> one {args.epoch_images}-image epoch ~ "
          f"{epoch_seconds:.0f} s")
    for label, c in cost.items():
        print(f"    {label:8s} state: {c['bytes'] / 1e6:.2f} MB written in {c['seconds'] * 1e3:.1f} ms = "
              f"{c['seconds'] / epoch_seconds:.2e} of an epoch")
    print(f"(b) DDP scaling: 1 process {single:.1f} images/s, {args.nproc} processes {multi:.1f} images/s, "
          f"ratio {multi / single:.2f} (the processes share the same {cores} cores: ideally 1.00 here; "
          f"{args.nproc:.0f} with one device each)")


if __name__ == "__main__":
    main()
