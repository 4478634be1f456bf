"""Device selection, thread settings and seeding, in one place."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from cnnlab.errors import UserError


def pick_device(requested: str | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:1"`` force one."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(f"--device {requested!r} is not a device: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {requested} asked for CUDA but no CUDA device is available: use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            gpus = f"{count} CUDA device{'s' if count != 1 else ''}"
            raise UserError(f"--device {requested}: this machine has {gpus} (cuda:0 to cuda:{count - 1}): "
                            f"use one of them, cuda or auto")
    return device


def thread_count() -> int:
    """Intra-op threads for this process: the job's share of the machine -- ``$CNNLAB_THREADS`` if set, else
    the cores the process may run on divided by ``$CNNLAB_JOBS`` (jobs running side by side, e.g. ``dvc queue
    start -j N``) -- divided among the job's processes on this machine under torchrun (``$LOCAL_WORLD_SIZE``);
    at least 1."""
    wanted = os.environ.get("CNNLAB_THREADS")
    jobs = os.environ.get("CNNLAB_JOBS")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1))
    if wanted:
        try:
            return max(1, int(wanted) // local)
        except ValueError:
            raise UserError(f"CNNLAB_THREADS={wanted!r} is not an integer: "
                            "set it to a thread count or unset it") from None
    if jobs:
        try:
            n_jobs = int(jobs)
        except ValueError:
            n_jobs = 0
        if n_jobs < 1:
            raise UserError(f"CNNLAB_JOBS={jobs!r} is not a positive integer: set it to the number of jobs "
                            "running at once (e.g. the N of dvc queue start -j N) or unset it")
        return max(1, cores // n_jobs // local)
    return max(1, cores // local)


def configure_threads() -> int:
    """Set torch's intra-op threads to :func:`thread_count` and return it."""
    n = thread_count()
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for data order/augmentation."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def memory_format_for(model: nn.Module, device: torch.device, channels_last: bool) -> torch.memory_format:
    """The memory format to train or explain ``model`` on ``device`` in: channels-last when asked for, except on a
    CPU for a model with a strided 1x1 convolution of fewer than 8 input channels (the projection shortcut of a
    ResNet-18 at width 1/16). There, the backward pass of PyTorch 2.14's CPU kernel corrupts memory in channels-last
    format on AVX2-only CPUs (measured on an AMD EPYC: a 1x1 stride-2 conv with 2, 4 or 6 input channels aborts with
    "double free or corruption" or a segfault; 8, 10, 12 and 16 run; the same tests passed on an AMX machine), so such
    a model stays in the default format (slower; float sums may differ in the last bits from channels-last)."""
    if not channels_last:
        return torch.contiguous_format
    if device.type == "cpu" and any(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 and m.in_channels < 8
        for m in model.modules()
    ):
        return torch.contiguous_format
    return torch.channels_last


def contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    """The strides of a tensor of ``shape`` in the default (row-major) memory format."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model without tensors."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each module's own ``training`` flag on exit."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def add_device_argument(parser) -> None:
    """The ``--device`` option every computing stage has (default ``$CNNLAB_DEVICE`` or auto)."""
    parser.add_argument("--device", default=os.environ.get("CNNLAB_DEVICE", "auto"),
                        help="auto (CUDA if available), cpu or cuda[:N]; default $CNNLAB_DEVICE or auto")
