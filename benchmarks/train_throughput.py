"""Training throughput of our pipeline vs the usual tutorial pipeline (ResNet-32, batch 128 by default).

- **ours**: uint8 images held in memory, batched crop+flip augmentation and normalisation on the
  device (:func:`cnnlab.augment.make_prepare`), channels-last memory format, the project's
  :func:`cnnlab.training.fit` (its reported training images/s, evaluation excluded);
- **naive**: the tutorial way: a ``Dataset`` returning PIL images through ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, batched by a ``DataLoader`` (``--workers``
  worker processes), NCHW float32, a plain SGD loop.

Both train the same architecture with the same optimiser settings on the same images (random
uint8 images, or the train split of a canonical dataset folder with ``--data``). Each pipeline
first runs ``--warmup`` untimed steps; ``--rounds`` alternates the two pipelines and keeps each
one's best round (the machine may be shared). FLOPs per training image (forward + backward) are
counted with :mod:`torch.utils.flop_counter`.

Usage::

    .venv/bin/python benchmarks/train_throughput.py --steps 10
    .venv/bin/python benchmarks/train_throughput.py --data data/cifar10 --rounds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from cnnlab.augment import make_prepare
from cnnlab.checkpoints import count_parameters
from cnnlab.data.canonical import channel_stats, load_manifest, load_split
from cnnlab.device import configure_threads, pick_device
from cnnlab.errors import UserError, run_cli
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.training import TrainConfig, fit

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per pipeline and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--depth", type=int, default=32, help="ResNet depth (6n+2)")
    parser.add_argument("--data", type=Path, default=None, help="canonical dataset folder (default: random images)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive pipeline")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best round counts")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for key in ("steps", "warmup", "batch_size", "rounds"):
        if getattr(args, key) < (0 if key == "warmup" else 1):
            raise UserError(f"--{key.replace('_', '-')} {getattr(args, key)} is too small: use a positive number")
    if args.workers < 0:
        raise UserError(f"--workers {args.workers} is negative: use 0 (load in the main process) or more")
    return args


def load_images(args: argparse.Namespace, count: int) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float]]:
    """``count`` uint8 images and labels (repeating the dataset if it is smaller) with the train mean/std."""
    if args.data is None:
        gen = torch.Generator().manual_seed(args.seed)
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, 10, (count,), generator=gen)
        mean, std = channel_stats(images)
        return images, labels, mean, std
    split = load_split(args.data, "train")
    manifest = load_manifest(args.data)
    index = torch.arange(count) % len(split)
    return split.images[index], split.labels[index], manifest["train_mean"], manifest["train_std"]


def training_flops_per_image(config: CifarNetConfig, image_shape: tuple[int, ...]) -> float:
    """FLOPs of one forward + backward pass per image (``FlopCounterMode`` counts a multiply-add as 2)."""
    model = build_cifar_net(config)
    x = torch.randn(2, *image_shape)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() / 2


def new_model(config: CifarNetConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_cifar_net(config)


def run_ours(
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: list[float],
    std: list[float],
    config: CifarNetConfig,
    args: argparse.Namespace,
) -> float:
    """Training images/s of :func:`fit` over ``args.steps`` steps (after an untimed warm-up fit)."""
    bs = args.batch_size
    prepare = make_prepare(mean, std, augment=True, channels_last=True)
    cfg = TrainConfig(
        epochs=1,
        batch_size=bs,
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        schedule="constant",
        eval_batch_size=bs,
        seed=args.seed,
        device=args.device,
        show_progress=False,
    )
    model = new_model(config, args.seed)
    probe = (images[:bs], labels[:bs])  # fit evaluates after the epoch; the time excludes evaluation
    if args.warmup:
        fit(model, (images[: args.warmup * bs], labels[: args.warmup * bs]), probe, cfg, prepare)
    timed = slice(args.warmup * bs, (args.warmup + args.steps) * bs)
    return fit(model, (images[timed], labels[timed]), probe, cfg, prepare).images_per_sec


class TutorialDataset(Dataset):
    """CIFAR the torchvision way: HWC uint8 arrays, one PIL image per ``__getitem__``, per-sample transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: transforms.Compose) -> None:
        self.images = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def run_naive(
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: list[float],
    std: list[float],
    config: CifarNetConfig,
    args: argparse.Namespace,
) -> float:
    """Training images/s of the tutorial loop over ``args.steps`` steps (after ``args.warmup`` steps)."""
    device = pick_device(args.device)
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    count = (args.warmup + args.steps) * args.batch_size
    dataset = TutorialDataset(images[:count], labels[:count], transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True)
    model = new_model(config, args.seed).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == args.warmup:
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    threads = configure_threads()
    config = CifarNetConfig("residual", args.depth)
    images, labels, mean, std = load_images(args, (args.warmup + args.steps) * args.batch_size)
    flops = training_flops_per_image(config, tuple(images.shape[1:]))
    params = count_parameters(build_cifar_net(config))
    device = pick_device(args.device)
    source = f"data {args.data}" if args.data else "random images"
    print(
        f"{config.name} ({params / 1e6:.2f}M parameters), batch {args.batch_size}, {args.steps} timed steps "
        f"x {args.rounds} round(s), {threads} thread(s), device {device}, {source}"
    )
    print(f"training FLOPs per image (forward + backward): {flops / 1e9:.3f} GFLOP")
    best = {"ours": 0.0, "naive": 0.0}
    for round_index in range(args.rounds):
        for name, run in (("ours", run_ours), ("naive", run_naive)):
            rate = run(images, labels, mean, std, config, args)
            best[name] = max(best[name], rate)
            print(f"  round {round_index + 1}: {name:5s} {rate:8.1f} img/s", flush=True)
    descriptions = {
        "ours": "ours  (uint8 in memory, batched augmentation, channels_last, fit)",
        "naive": f"naive (DataLoader, {args.workers} workers, PIL per-sample transforms, NCHW fp32)",
    }
    for name, description in descriptions.items():
        print(f"{description}: {best[name]:.1f} img/s = {best[name] * flops / 1e9:.1f} GFLOP/s")
    print(f"speed-up ours / naive: {best['ours'] / best['naive']:.2f}x")


if __name__ == "__main__":
    run_cli(main)
