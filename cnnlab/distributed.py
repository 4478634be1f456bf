"""One model on many devices: torchrun + DistributedDataParallel, as :func:`cnnlab.training.fit` uses it.

A training stage runs unchanged under ``torchrun`` (``torch.distributed.run``), which starts one process
per device and tells each its place through environment variables: ``RANK``/``WORLD_SIZE`` (all
processes) and ``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` (this machine). Without them the process is rank 0 of
a world of 1 and nothing here does anything, so a plain ``python stages/...`` run is untouched.

- :func:`relaunch`: a stage whose ``nproc`` param is above 1 starts itself again under torchrun
  (``--standalone``, one machine) and waits; a worker's one-line error stays one line (torchrun's own
  failure report is not printed) and its exit status becomes the stage's.
- :func:`setup`/:func:`teardown`: the process group, NCCL on CUDA devices (``cuda:LOCAL_RANK``, see
  :func:`rank_device`), gloo on the CPU.
- :func:`sync_batchnorm`: every BatchNorm layer computes its batch statistics over the global batch,
  as one process would: :class:`torch.nn.SyncBatchNorm` on CUDA; on the CPU, where PyTorch's
  SyncBatchNorm raises ("expected input tensor to be on GPU"), :class:`CpuSyncBatchNorm` (same
  statistics, all-reduced with gloo).
- collectives that are no-ops in a world of 1: :func:`all_reduce_`, :func:`broadcast_object`,
  :func:`gather_objects`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.errors import UserError

#: how long a rank waits for the others at start-up before giving up (torchrun ends all ranks sooner
#: when one of them fails)
INIT_TIMEOUT = datetime.timedelta(minutes=10)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def rank() -> int:
    """This process's global rank (0 when not under torchrun)."""
    return _env_int("RANK", 0)


def world_size() -> int:
    """The number of processes training together (1 when not under torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def local_world_size() -> int:
    """The number of processes of the run on this machine (1 when not under torchrun)."""
    return _env_int("LOCAL_WORLD_SIZE", 1)


def is_main() -> bool:
    """True on the process that writes outputs, curves and resume states (rank 0)."""
    return rank() == 0


def launched() -> bool:
    """True when started by torchrun (or another launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, a CUDA device without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", local_rank())
    return device


def active() -> bool:
    """True when a process group of more than one process is set up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: torch.device) -> bool:
    """Join the other ranks (NCCL on CUDA, gloo on the CPU) unless the world is 1 or already set up;
    True when this call created the process group (the caller then calls :func:`teardown`)."""
    if world_size() == 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if device.type == "cuda":
        if local_world_size() > torch.cuda.device_count():
            raise UserError(f"{local_world_size()} processes on this machine but only {torch.cuda.device_count()} "
                            "CUDA device(s): start at most one process per GPU (nproc) or use --device cpu")
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=INIT_TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=INIT_TIMEOUT)
    return True


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; every rank gets the same sum."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects, e.g. a resume state read by rank 0 only)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------------
# Synchronised BatchNorm


class _SyncBatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm with statistics over the inputs of all ranks (any device, any backend).

    Forward all-reduces per-channel sums, sums of squares and counts (in float64); backward all-reduces
    the per-channel sums of ``dy`` and ``dy * x_hat``, which the input gradient needs. The weight and bias
    gradients are this rank's share; DistributedDataParallel averages them like every other gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):  # noqa: ANN001, ANN205
        dims = [0, *range(2, x.ndim)]
        shape = [1, -1] + [1] * (x.ndim - 2)
        x64 = x.double()
        count = x.numel() // x.shape[1]
        stats = torch.cat([x64.sum(dims), (x64 * x64).sum(dims), x64.new_tensor([count])])
        all_reduce_(stats)
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
                unbiased = var * total / (total - 1).clamp_min(1)
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        x_hat = ((x64 - mean.view(shape)) * invstd.view(shape)).to(x.dtype)
        ctx.save_for_backward(x_hat, weight, invstd.to(x.dtype))
        ctx.total = total
        y = x_hat
        if weight is not None:
            y = y * weight.view(shape) + bias.view(shape)
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x_hat, weight, invstd = ctx.saved_tensors
        dims = [0, *range(2, dy.ndim)]
        shape = [1, -1] + [1] * (dy.ndim - 2)
        local = torch.cat([dy.sum(dims), (dy * x_hat).sum(dims)]).double()
        channels = dy.shape[1]
        grad_bias, grad_weight = local[:channels].to(dy.dtype), local[channels:].to(dy.dtype)
        sums = all_reduce_(local.clone())
        mean_dy = (sums[:channels] / ctx.total).to(dy.dtype).view(shape)
        mean_dy_xhat = (sums[channels:] / ctx.total).to(dy.dtype).view(shape)
        scale = invstd.view(shape) if weight is None else (weight * invstd).view(shape)
        dx = scale * (dy - mean_dy - x_hat * mean_dy_xhat)
        if weight is None:
            return dx, None, None, None, None, None, None
        return dx, grad_weight, grad_bias, None, None, None, None


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (any number of dimensions) with batch statistics over all ranks, for CPU tensors and gloo,
    where :class:`torch.nn.SyncBatchNorm` refuses to run; eval mode (or a world of 1) is plain BN."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / self.num_batches_tracked.item()
        return _SyncBatchNormFunction.apply(
            input, self.weight, self.bias, self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None, self.eps, momentum,
        )


@contextlib.contextmanager
def sync_batchnorm(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """While active (world > 1), every BatchNorm layer of ``model`` is replaced by a synchronised one
    that shares its parameters and running statistics; on exit the original layers are put back,
    holding the trained values. Nothing changes in a world of 1."""
    if not active():
        yield model
        return
    cls = nn.SyncBatchNorm if device.type == "cuda" else CpuSyncBatchNorm
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            synced = isinstance(child, (nn.SyncBatchNorm, CpuSyncBatchNorm))
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not synced:
                sync = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                sync.weight, sync.bias = child.weight, child.bias  # the same tensors: the optimiser's
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
                sync.train(child.training)
                setattr(parent, name, sync)
                swapped.append((parent, name, child))
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)


# --------------------------------------------------------------------------------------------------
# Launch


def relaunch(nproc: int, batch_size: int, what: str) -> None:
    """With ``nproc`` > 1 and not under torchrun: run this script (same arguments) as ``nproc`` processes
    of ``torchrun --standalone`` and exit with their status. Otherwise return at once.

    ``what`` names the param in messages (e.g. ``train_classifier.nproc``); ``batch_size`` (the global
    batch) must split evenly over the processes.
    """
    if nproc <= 1 or launched():
        return
    if batch_size % nproc:
        raise UserError(f"batch_size={batch_size} cannot be split over {what}={nproc} processes: "
                        f"use a batch size divisible by {nproc} or another {what}")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))  # torchrun would warn and use 1
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # no multi-line failure report
    print(f"{what}={nproc}: starting {nproc} processes with torchrun --standalone", flush=True)
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", sys.argv[0], *sys.argv[1:]]))
    except ChildFailedError as err:
        failed_rank, failure = err.get_first_failure()
        if failure.exitcode in (2, 130):  # the rank printed its one-line error / interruption
            raise SystemExit(failure.exitcode) from None
        how = (f"was killed by {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        print(f"error: rank {failed_rank} of {nproc} {how} (its output is above)", file=sys.stderr)
        raise SystemExit(1) from None
    except SignalException as err:  # Ctrl-C or kill of this process: torchrun has stopped the workers
        raise SystemExit(130 if err.sigval == signal.SIGINT else 128 + int(err.sigval)) from None
    raise SystemExit(0)
