"""The one training loop of the project (CIFAR classifiers, the MNIST CNN, FCN segmentation nets).

Data stays in memory as uint8 ``[N, C, H, W]`` with int64 targets, either labels ``[N]`` or masks
``[N, H, W]`` (cross-entropy and accuracy handle both; accuracy counts every target element, so it
is pixel accuracy for masks). Each epoch draws a seeded permutation, moves each batch to the device
and hands it to ``prepare`` (see :func:`cnnlab.augment.make_prepare`), which augments and normalises.

Optimisation: SGD with (Nesterov) momentum or Adam, L2 weight decay on every trainable parameter (or,
with ``decay_bn_bias: false``, on weight matrices and kernels only: BatchNorm scales/shifts and biases are
not decayed), cross-entropy with optional label smoothing, and a per-iteration learning rate: linear
warm-up, then cosine decay to zero, linear decay to zero, steps of x0.1 at 50% and 75% of training (He et
al., 2016), or constant. Only parameters with ``requires_grad`` are optimised,
so frozen encoders stay fixed. The last incomplete batch of each epoch is dropped (every step sees a
full batch, which BN needs; the permutation changes every epoch, so no image is left out for good).

After every epoch the model is evaluated on the test split (``model.eval()``, no gradients). With ``ema_epochs > 0``
an exponential moving average of the weights and BatchNorm statistics (``torch.optim.swa_utils.AveragedModel``,
updated after every step) is what gets evaluated, and the model holds the averaged weights on return; with
``eval_flip`` each test image's logits are averaged with its mirror image's (test-time augmentation).
:func:`fit` keeps the *final* weights and reports the best epoch (``best_epoch``/``best_test_acc``):
choosing weights by test accuracy would select on the test set, so the final model is the honest
one. Only when training diverges (a NaN/inf loss) does :func:`fit` stop early and restore the weights
of the best epoch so far (or the initial weights), warning once with the model's name.

Performance: mixed precision (``amp``) where the hardware computes it natively: fp16 autocast with a gradient
scaler on CUDA, bf16 autocast on a CPU with AMX or AVX512-BF16 instructions (2.2x the fp32 speed of a ResNet-32
step on a 2-core Sapphire Rapids; on other CPUs bf16 is emulated and slower, so ``amp`` does nothing there);
channels-last memory format (``channels_last``).
On the CPU a seed gives bit-identical results: data order and augmentation draw from a generator
seeded with ``seed``, and the global RNG (dropout) is re-seeded inside a forked RNG state, so the
caller's RNG state is left untouched.

Resume: with ``resume_path``, :func:`fit` saves after every epoch everything the rest of the run depends
on (weights, optimiser and gradient-scaler state, the epoch, which fixes the learning-rate schedule, the
data-order, global-CPU and CUDA RNG states, the history and the best-epoch bookkeeping), atomically and
loadable with ``weights_only=True``. A later call with the same ``resume_key`` continues after the last
saved epoch and, on the CPU, ends bit-identical to a run that was never interrupted. A state saved under
another key, or one that cannot be read, is ignored with a warning saying why. Ctrl-C raises
:class:`cnnlab.errors.Interrupted` naming the epoch it stopped in.

Many devices (under torchrun, see :mod:`cnnlab.distributed`; nothing changes in a single process): every
rank draws the same permutation and the same augmentation parameters for the whole global batch of
``batch_size`` images from the shared seeded generator, and trains on its rows of it (``batch_size /
world_size`` each, a contiguous slice; ``batch_size`` must divide evenly). The model is wrapped in
DistributedDataParallel, which averages the gradients, and each rank's loss is its share of the global
batch's mean loss, so each step is the step one process takes on the whole batch. BatchNorm layers use
statistics over the global batch (:func:`cnnlab.distributed.sync_batchnorm`). Losses, correct counts and
the test evaluation (each rank evaluates a contiguous share of the test set) are all-reduced, so every
rank logs the global numbers and takes the same decisions (divergence, best epoch). One process and N
processes therefore optimise the same objective with the same data and augmentation; they differ only in
float rounding (summation order of the reductions) and in dropout masks (each rank draws its own from the
global RNG, seeded ``seed + rank``). Rank 0 alone reads the resume state (and broadcasts it), saves it
(with every rank's RNG state), prints and shows progress.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import swa_utils
from tqdm.auto import tqdm

from cnnlab import distributed
from cnnlab.augment import random_window
from cnnlab.config import config_from_dict, is_int, is_number
from cnnlab.device import contiguous_strides, eval_mode, memory_format_for, pick_device
from cnnlab.errors import Interrupted, UserError
from cnnlab.gradient_recording import EpochGradients
from cnnlab.io import save_torch
from cnnlab.metrics.classification import count_correct

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "linear", "step", "constant")
STEP_MILESTONES = (0.5, 0.75)  # fractions of all iterations at which the "step" schedule divides by 10
STEP_FACTOR = 0.1
SYNC_EVERY = 10  # steps between host syncs (progress bar, NaN check)
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_sec")
TIMING_KEYS = ("train_seconds", "images_per_sec")  # wall-clock results: never in reproducible outputs
RESUME_FORMAT = 3  # 3: + the per-epoch gradient record ("gradients")
RESUME_FIELDS = ("format", "key", "epoch", "epochs", "model", "optimizer", "scaler", "rng", "history", "best_epoch",
                 "best_test_acc", "best_state", "ema", "gradients")

class PrepareFn(Protocol):
    """``prepare(uint8 batch, train, generator, shard) -> float input``, see :class:`cnnlab.augment.Prepare`. Training
    batches are called with ``shard=(start, global_batch_size)`` under torchrun (the rows of the global batch this
    rank holds, whose random draws must be the whole batch's) and ``shard=None`` otherwise."""

    def __call__(
        self, x: torch.Tensor, train: bool = False, gen: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> torch.Tensor: ...


Data = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (check them with :meth:`validate`).

    ``lr`` is the peak learning rate (after ``warmup_epochs``, which may be fractional); ``momentum``
    and ``nesterov`` apply to SGD only; ``weight_decay`` is L2 on every trainable parameter;
    ``eval_batch_size`` only affects speed/memory of the per-epoch evaluation; ``seed`` fixes data
    order, augmentation and dropout; ``device`` None/"auto" picks CUDA when available; ``amp`` (mixed precision)
    takes effect on CUDA (fp16) and on CPUs with native bf16 (see :func:`cpu_has_native_bf16`); ``show_progress``
    shows a tqdm bar per epoch. ``label_smoothing`` is cross-entropy's (training loss only; the test loss is plain
    cross-entropy); ``ema_epochs`` is the time constant, in epochs, of the evaluated exponential moving average
    of the weights (0 = off; per-step decay ``exp(-1 / (ema_epochs * steps_per_epoch))``); ``eval_flip``
    averages the logits of each test image and its mirror; ``decay_bn_bias: false`` exempts parameters with fewer
    than two dimensions (BatchNorm scales and shifts, biases) from ``weight_decay``. ``grad_every`` = k > 0 records
    per-layer gradient statistics on every k-th step (0 = off; see :class:`cnnlab.gradients.EpochGradients`, and
    :attr:`TrainResult.gradients`); the recording reads the gradients only, so the training result is the same.
    ``small_crop_epochs`` = k > 0 trains the first k epochs on a random ``small_crop_size`` square window of every
    (augmented) training image (progressive resizing, classifiers only; see :func:`cnnlab.augment.random_window`);
    later epochs and every evaluation use the whole images.
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: float = 0
    eval_batch_size: int = 1000
    seed: int = 0
    device: str | None = None
    channels_last: bool = True
    amp: bool = True
    show_progress: bool = True
    label_smoothing: float = 0.0
    ema_epochs: float = 0.0
    eval_flip: bool = False
    decay_bn_bias: bool = True
    grad_every: int = 0
    small_crop_epochs: int = 0
    small_crop_size: int = 24

    def validate(self, n_train: int) -> None:
        """Raise :class:`UserError` naming the key and value of the first bad setting."""

        def bad(key: str, problem: str) -> UserError:
            return UserError(f"training {key}={getattr(self, key)!r} {problem}")

        def need_int(key: str, minimum: int) -> None:
            value = getattr(self, key)
            if not is_int(value) or value < minimum:
                raise bad(key, f"is invalid: use an integer >= {minimum}")

        def need_number(key: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
            value = getattr(self, key)
            ok = is_number(value, finite=True)
            if not ok or value < low or (low_open and value == low) or value >= high:
                interval = f"{'(' if low_open else '['}{low:g}, {high:g})"
                raise bad(key, f"is invalid: use a number in {interval}")

        def need_bool(key: str) -> None:
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "is invalid: use true or false")

        need_int("epochs", 1)
        need_int("batch_size", 1)
        if self.batch_size > n_train:
            raise bad("batch_size", f"is larger than the {n_train} training examples: use at most {n_train}")
        need_number("lr", 0.0, low_open=True)
        need_number("momentum", 0.0, 1.0)
        need_number("weight_decay", 0.0)
        need_number("label_smoothing", 0.0, 1.0)
        need_number("ema_epochs", 0.0)
        for key in ("nesterov", "channels_last", "amp", "show_progress", "eval_flip", "decay_bn_bias"):
            need_bool(key)
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"is not supported: use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"is not supported: use one of {', '.join(SCHEDULES)}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise bad("nesterov", "needs momentum > 0: set momentum or nesterov: false")
        need_number("warmup_epochs", 0.0)
        if self.warmup_epochs > self.epochs:
            raise bad("warmup_epochs", f"exceeds epochs={self.epochs}: use at most {self.epochs}")
        need_int("eval_batch_size", 1)
        need_int("grad_every", 0)
        need_int("small_crop_epochs", 0)
        if self.small_crop_epochs >= self.epochs:
            raise bad("small_crop_epochs", f"leaves no full-size epoch of the {self.epochs}: use at most "
                      f"{self.epochs - 1} (the last epochs must train on whole images)")
        need_int("small_crop_size", 1)
        need_int("seed", 0)
        if self.device is not None and not isinstance(self.device, str):
            raise bad("device", "is invalid: use auto, cpu or cuda[:N]")
        pick_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a params dict; unknown keys and missing required keys raise :class:`UserError`."""
        return config_from_dict(cls, data, "training config")


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of iteration ``step`` (0-based) for a run of ``cfg.epochs * steps_per_epoch`` steps.

    Warm-up raises the rate linearly to ``cfg.lr`` over the first ``warmup_epochs`` (reaching it at the
    last warm-up step); afterwards "cosine" decays it as ``0.5 * (1 + cos(pi * t))`` with ``t`` the
    fraction of post-warm-up steps done, "linear" as ``1 - t`` (with warm-up: the triangle of a one-cycle
    schedule), "step" multiplies by 0.1 at 50% and 75% of all steps, and
    "constant" keeps it.
    """
    total = cfg.epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    milestones = [m * total for m in STEP_MILESTONES]

    def rate(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        if cfg.schedule == "cosine":
            return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        if cfg.schedule == "linear":
            return cfg.lr * (1.0 - (step - warmup) / max(1, total - warmup))
        if cfg.schedule == "step":
            return cfg.lr * STEP_FACTOR ** sum(step >= m for m in milestones)
        return cfg.lr

    return rate


# --------------------------------------------------------------------------------------------------
# Evaluation and prediction


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16): only then is bf16 autocast faster
    than fp32. ``CNNLAB_CPU_BF16=0`` or ``1`` overrides the detection (e.g. to compare both on one machine)."""
    forced = os.environ.get("CNNLAB_CPU_BF16", "")
    if forced in ("0", "1"):
        return forced == "1"
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's (private, hence guarded) probes
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype ``amp`` means on ``device``: fp16 on CUDA, bf16 on a CPU with native bf16, else None."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """Autocast to :func:`amp_dtype` (nothing when that is None)."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _as_device(device: torch.device | str | None) -> torch.device:
    return device if isinstance(device, torch.device) else pick_device(device)


def _forward(
    model: nn.Module, images: torch.Tensor, prepare: PrepareFn, device: torch.device, amp: bool, flip: bool = False
) -> torch.Tensor:
    """Logits (float32, on ``device``) of a uint8 batch in evaluation mode; with ``flip`` the mean of the logits
    of the batch and of its mirror image (left-right)."""
    x = prepare(images.to(device, non_blocking=True), False, None)
    with _autocast(device, amp):
        logits = model(x).float()
        if flip:
            logits = (logits + model(x.flip(3)).float()) / 2
    return logits


def evaluate(
    model: nn.Module,
    data: Data,
    prepare: PrepareFn,
    batch_size: int,
    device: torch.device | str,
    class_weights: torch.Tensor | None = None,
    amp: bool = False,
    flip: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data = (uint8 images, targets)``.

    The loss is the (class-weighted) mean over all target elements, as ``F.cross_entropy`` with
    ``reduction="mean"`` on the whole split would give; accuracy is the fraction of target elements
    whose argmax is right. Runs in eval mode without gradients and restores the model's mode. ``amp`` and
    ``flip``: see :class:`TrainConfig` (``amp``, ``eval_flip``).
    """
    device = _as_device(device)
    loss_sum, weight_sum, correct = _eval_sums(model, data, prepare, batch_size, device, class_weights, amp, flip)
    return (loss_sum / weight_sum).item(), correct.item() / max(1, data[1].numel())


def _eval_sums(
    model: nn.Module, data: Data, prepare: PrepareFn, batch_size: int, device: torch.device,
    class_weights: torch.Tensor | None, amp: bool, flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed (weighted) loss, summed weight and correct count of ``model`` on ``data``."""
    images, targets = data
    weights = None if class_weights is None else class_weights.to(device, torch.float32)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    weight_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(images), batch_size):
            logits = _forward(model, images[start : start + batch_size], prepare, device, amp, flip)
            target = targets[start : start + batch_size].to(device, non_blocking=True)
            loss_sum += F.cross_entropy(logits, target, weight=weights, reduction="sum").double()
            weight_sum += target.numel() if weights is None else weights[target].sum().double()
            correct += count_correct(logits, target)
    return loss_sum, weight_sum, correct


def _evaluate_all_ranks(
    model: nn.Module, data: Data, prepare: PrepareFn, batch_size: int, device: torch.device,
    class_weights: torch.Tensor | None, amp: bool, flip: bool = False,
) -> tuple[float, float]:
    """:func:`evaluate`, under torchrun on each rank's contiguous share of ``data``, sums all-reduced
    (every rank gets the same numbers; they equal one process's up to the float64 summation order)."""
    if not distributed.active():
        return evaluate(model, data, prepare, batch_size, device, class_weights, amp, flip)
    images, targets = data
    n, world, rank = len(images), distributed.world_size(), distributed.rank()
    part = slice(rank * n // world, (rank + 1) * n // world)
    loss_sum, weight_sum, correct = _eval_sums(
        model, (images[part], targets[part]), prepare, batch_size, device, class_weights, amp, flip
    )
    sums = distributed.all_reduce_(torch.stack([loss_sum, weight_sum, correct.double()]))
    return (sums[0] / sums[1]).item(), round(sums[2].item()) / max(1, targets.numel())


def predict(
    model: nn.Module, images: torch.Tensor, prepare: PrepareFn, batch_size: int, device: torch.device | str
) -> torch.Tensor:
    """Logits of ``model`` for uint8 ``images`` as a CPU float32 tensor (eval mode, no gradients)."""
    device = _as_device(device)
    with torch.no_grad(), eval_mode(model):
        chunks = [
            _forward(model, images[start : start + batch_size], prepare, device, amp=False).cpu()
            for start in range(0, len(images), batch_size)
        ]
    return torch.cat(chunks)


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    """What :func:`fit` returns. The model keeps its final weights unless training diverged.

    ``test_loss``/``test_acc`` belong to the weights the model holds on return; ``train_seconds``
    and ``images_per_sec`` cover the training steps only (evaluation excluded; after a resume, the epochs
    of every run). ``best_epoch`` is 1-based; 0 (and ``best_test_acc`` None) when no epoch completed.
    ``resumed_epoch`` is the number of epochs restored from a resume state (0 for a fresh run).
    ``gradients``: with ``grad_every > 0`` the per-epoch gradient record (epoch 0 = the first step's gradient at
    the initial weights, then one entry per completed epoch; ``.to_frame()`` gives the table), else None.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_test_acc: float | None = None
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    train_seconds: float = 0.0
    images_per_sec: float = 0.0
    diverged_epoch: int | None = None
    resumed_epoch: int = 0
    gradients: EpochGradients | None = None

    def summary(self) -> dict:
        """The reproducible scalar results, e.g. for a metrics JSON file: no history, no gradient record, no
        wall-clock figures (:meth:`timing`), nothing that depends on whether the run was interrupted."""
        skip = {"history", "resumed_epoch", "gradients", *TIMING_KEYS}
        # not asdict(): it would deep-copy the gradient record, which holds the model's weights
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def timing(self) -> dict:
        """The wall-clock results (``train_seconds``, ``images_per_sec``), which differ from run to run."""
        return {k: getattr(self, k) for k in TIMING_KEYS}


class _Diverged(Exception):
    """Raised inside an epoch when the training loss stops being finite."""

    def __init__(self, loss: float) -> None:
        super().__init__(loss)
        self.loss = loss


class _Stepper:
    """Holds what one :func:`fit` call needs per step: device, optimiser, scaler, schedule; under torchrun also
    this rank's share of each global batch (``world``, ``rank``, ``local_batch``) and the DDP wrapper ``net``."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        prepare: PrepareFn,
        class_weights: torch.Tensor | None,
        steps_per_epoch: int,
        name: str,
    ) -> None:
        self.model, self.cfg, self.prepare, self.name = model, cfg, prepare, name
        self.device = distributed.rank_device(pick_device(cfg.device))
        self.world, self.rank, self.main = distributed.world_size(), distributed.rank(), distributed.is_main()
        self.local_batch = cfg.batch_size // self.world
        self.net = model  # what the training steps call: the DistributedDataParallel wrapper under torchrun
        self.amp_dtype = amp_dtype(self.device, cfg.amp)
        self.amp = self.amp_dtype is not None
        self.memory_format = memory_format_for(model, self.device, cfg.channels_last)
        model.to(device=self.device, memory_format=self.memory_format)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise UserError(f"{name} has no trainable parameters: unfreeze at least one layer")
        groups: list[dict] = [{"params": params}]
        if not cfg.decay_bn_bias:  # BatchNorm scales/shifts and biases (ndim < 2) without weight decay
            groups = [{"params": [p for p in params if p.ndim >= 2]},
                      {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
            groups = [g for g in groups if g["params"]]
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
            )
        else:
            self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)  # bf16 needs none
        # the evaluated weights: an exponential moving average (weights and BN statistics) if cfg.ema_epochs > 0;
        # its time constant is given in epochs so that it means the same on a subset as on the whole dataset
        self.ema = None
        if cfg.ema_epochs > 0:
            decay = math.exp(-1.0 / (cfg.ema_epochs * steps_per_epoch))
            self.ema = swa_utils.AveragedModel(model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay),
                                               use_buffers=True)
        self.eval_model = model if self.ema is None else self.ema.module
        self.weights = None if class_weights is None else class_weights.to(self.device, torch.float32)
        self.steps_per_epoch = steps_per_epoch
        self.lr_at = lr_schedule(cfg, steps_per_epoch)
        self.lr = cfg.lr
        # every rank records (DDP has averaged the gradients: the same numbers everywhere), so every rank
        # returns the same result
        self.gradients = EpochGradients(model) if cfg.grad_every > 0 else None

    def distribute(self) -> None:
        """Wrap the model for DistributedDataParallel (call with the process group set up and BN synced)."""
        if distributed.active():
            ids = [self.device.index] if self.device.type == "cuda" else None
            # BN running statistics are identical on every rank (synchronised BN): no buffer broadcasts. A model
            # with parameters its forward pass never uses (ResNet-18 without skips: its projection shortcuts)
            # makes DDP wait for their gradients forever unless told to look for unused ones.
            unused = getattr(self.model, "unused_parameter_names", list)()
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, forward_sync_buffers=False,
                                                           find_unused_parameters=bool(unused))

    def step(
        self, images: torch.Tensor, target: torch.Tensor, step: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a uint8 batch (this rank's rows of the global batch under torchrun);
        returns the (detached) loss, under torchrun this rank's share of the global batch's loss, and the
        correct count."""
        images = images.to(self.device, non_blocking=True)
        # under torchrun the random draws are made for the whole global batch; this rank uses its rows
        shard = None if self.world == 1 else (self.rank * self.local_batch, self.cfg.batch_size)
        x = self.prepare(images, True, gen, shard=shard)
        if step < self.cfg.small_crop_epochs * self.steps_per_epoch:  # progressive resizing: a smaller window
            x = random_window(x, self.cfg.small_crop_size, gen, shard)
        if x.ndim == 4:
            x = x.contiguous(memory_format=self.memory_format)
            if self.memory_format == torch.contiguous_format and x.stride() != contiguous_strides(x.shape):
                # one input channel: channels-last strides pass is_contiguous() (the channel stride is never used)
                # but make the convolutions pick channels-last; memory_format_for chose the default format
                x = x.clone(memory_format=torch.contiguous_format)
        target = target.to(self.device, non_blocking=True)
        self.lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with _autocast(self.device, self.amp):
            logits = self.net(x)
            if self.world == 1:
                loss = F.cross_entropy(logits.float(), target, weight=self.weights,
                                       label_smoothing=self.cfg.label_smoothing)
            else:
                loss = self._global_share(logits.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.gradients is not None and step % self.cfg.grad_every == 0:
            # fp16: the gradients are scaled; unscale_ divides them in place, and step() then does not unscale
            # again (the documented way to read gradients between backward and step; a no-op when disabled)
            self.scaler.unscale_(self.optimizer)
            self.gradients.record()
            if step == 0:  # epoch 0: the gradient at the initial weights (this batch also counts for epoch 1)
                self.gradients.snapshot(0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach() / self.world, count_correct(logits.detach(), target)

    def _global_share(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """This rank's part of the global batch's mean loss, times the world size: DDP averages the
        gradients over the ranks, so the step is that of the global mean. With class weights the mean is
        over the weights of the whole global batch (all-reduced)."""
        smoothing = self.cfg.label_smoothing
        if self.weights is None:  # every rank holds the same number of target elements
            return F.cross_entropy(logits, target, label_smoothing=smoothing)
        total = distributed.all_reduce_(self.weights[target].sum().detach())
        loss = F.cross_entropy(logits, target, weight=self.weights, reduction="sum", label_smoothing=smoothing)
        return loss * self.world / total

    def train_epoch(self, train: Data, epoch: int, gen: torch.Generator, bar: tqdm) -> dict:
        """One pass over a fresh permutation of ``train``; raises :class:`_Diverged` on a non-finite loss.
        ``bar`` counts the run's training images (its rate and ETA cover the whole run)."""
        images, targets = train
        bs, steps = self.cfg.batch_size, self.steps_per_epoch
        order = torch.randperm(len(images), generator=gen)  # the same on every rank (same seed, same draws)
        first, last = self.rank * self.local_batch, (self.rank + 1) * self.local_batch  # this rank's rows
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        elements = 0
        self.model.train()
        bar.set_description(f"{self.name} epoch {epoch}/{self.cfg.epochs}", refresh=False)
        done = bar.n
        start = time.perf_counter()
        for i in range(steps):
            index = order[i * bs : (i + 1) * bs][first:last]
            target = targets[index]
            loss, right = self.step(images[index], target, (epoch - 1) * steps + i, gen)
            loss_sum += loss.double()
            correct += right
            elements += target.numel()
            if (i + 1) % SYNC_EVERY == 0 or i + 1 == steps:  # all ranks decide on the same global loss
                mean_loss = distributed.all_reduce_(loss_sum.clone()).item() / (i + 1)
                if not math.isfinite(mean_loss):
                    raise _Diverged(mean_loss)
                bar.update(done + (i + 1) * bs - bar.n)
                bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{self.lr:.3g}", refresh=False)
        seconds = time.perf_counter() - start
        distributed.all_reduce_(loss_sum)
        distributed.all_reduce_(correct)
        return {
            "train_loss": loss_sum.item() / steps,
            "train_acc": correct.item() / (elements * self.world),
            "lr": self.lr,
            "seconds": seconds,
            "images_per_sec": steps * bs / seconds,
        }


def epoch_line(name: str, row: Mapping[str, Any], epochs: int, eta_seconds: float) -> str:
    """One line per epoch for logs: losses, accuracies, speed and the estimated time left for the run."""
    minutes, seconds = divmod(round(eta_seconds), 60)
    return (f"{name} epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}, "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}, {row['images_per_sec']:.0f} img/s, "
            f"ETA {minutes}:{seconds:02d}")


def _check_data(data: Data, split: str) -> Data:
    images, targets = data
    if len(images) == 0:
        raise UserError(f"the {split} split is empty: check the dataset folder")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{split} images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    if targets.dtype != torch.int64 or len(targets) != len(images):
        raise ValueError(
            f"{split} targets must be int64 with {len(images)} rows, got {targets.dtype} {tuple(targets.shape)}"
        )
    return images, targets


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _rank_rng(device: torch.device) -> dict:
    """This process's global CPU and CUDA RNG states (dropout draws)."""
    return {"cpu": torch.get_rng_state(), "cuda": [torch.cuda.get_rng_state(d) for d in _rng_devices(device)]}


def _resume_state(
    stepper: _Stepper, key: Mapping[str, str], result: TrainResult, best_state: dict, gen: torch.Generator,
    ranks_rng: list[dict] | None = None,
) -> dict:
    """Everything the epochs after ``result.history[-1]`` depend on (see the module docstring). Under torchrun
    ``ranks_rng`` holds every rank's :func:`_rank_rng` (``rng.ranks``); the rest is the same on every rank."""
    epoch = len(result.history)
    rng = {"data": gen.get_state(), **_rank_rng(stepper.device)}
    if ranks_rng is not None:
        rng["ranks"] = ranks_rng
    return {
        "format": RESUME_FORMAT,
        "key": dict(key),
        "epoch": epoch,
        "epochs": stepper.cfg.epochs,
        "model": stepper.model.state_dict(),
        "optimizer": stepper.optimizer.state_dict(),
        "scaler": stepper.scaler.state_dict(),
        "rng": rng,
        "history": [dict(row) for row in result.history],
        "best_epoch": result.best_epoch,
        "best_test_acc": result.best_test_acc,
        "best_state": best_state if result.best_epoch < epoch else None,  # None: the weights of `epoch`
        "ema": None if stepper.ema is None else stepper.ema.state_dict(),
        "gradients": None if stepper.gradients is None else stepper.gradients.state_dict(),
    }


def _read_resume_state(path: Path, key: Mapping[str, str], stepper: _Stepper) -> dict | None:
    """The resume state at ``path`` if it belongs to this run, else None (after a warning saying why)."""
    if not path.exists():
        return None
    cfg, name = stepper.cfg, stepper.name
    fresh = f"training {name} from scratch"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a truncated/corrupt file
        log.warning("ignoring the resume state %s, it cannot be read (%s); %s", path, type(err).__name__, fresh)
        return None
    missing = [f for f in RESUME_FIELDS if f not in state] if isinstance(state, dict) else list(RESUME_FIELDS)
    if missing or state["format"] != RESUME_FORMAT:
        log.warning("ignoring the resume state %s, it is incomplete or of another version; %s", path, fresh)
        return None
    saved = state["key"] if isinstance(state["key"], dict) else {}
    changed = sorted(k for k in {*saved, *key} if saved.get(k) != key.get(k))
    if changed:
        log.warning("ignoring the resume state %s: %s changed since it was saved; %s", path,
                    " and ".join(changed), fresh)
        return None
    epoch = state["epoch"]
    if not (isinstance(epoch, int) and 1 <= epoch <= cfg.epochs == state["epochs"] and len(state["history"]) == epoch):
        log.warning("ignoring the resume state %s, its epoch count is inconsistent; %s", path, fresh)
        return None
    return state


def _restore(state: dict, stepper: _Stepper, result: TrainResult, gen: torch.Generator) -> dict | None:
    """Load ``state`` into the model, optimiser, scaler, RNGs and ``result``; returns the best-epoch weights
    (None: the loaded ones). Raises on a state that does not fit; the model is then left as it was."""
    model, optimizer, scaler, ema = stepper.model, stepper.optimizer, stepper.scaler, stepper.ema
    before = _snapshot(model), optimizer.state_dict(), scaler.state_dict(), None if ema is None else _snapshot(ema)
    empty_gradients = None if stepper.gradients is None else stepper.gradients.state_dict()
    try:
        if (ema is None) != (state["ema"] is None):
            raise ValueError("the state was saved with the weight average switched the other way")
        if (stepper.gradients is None) != (state["gradients"] is None):
            raise ValueError("the state was saved with the gradient recording switched the other way")
        if stepper.gradients is not None:
            stepper.gradients.load_state_dict(state["gradients"])
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        gen.set_state(rng["data"])
        ranks = rng.get("ranks") or []
        if len(ranks) == stepper.world:  # saved by as many processes: each takes its own
            rng = ranks[stepper.rank]
        elif stepper.rank > 0:  # another world size: rank 0 continues the saved stream, the others a seeded one
            rng = {"cpu": torch.Generator().manual_seed(stepper.cfg.seed + stepper.rank).get_state(), "cuda": []}
        torch.set_rng_state(rng["cpu"])
        for device, cuda_state in zip(_rng_devices(stepper.device), rng["cuda"], strict=bool(rng["cuda"])):
            torch.cuda.set_rng_state(cuda_state, device)
    except Exception:
        model.load_state_dict(before[0])
        optimizer.load_state_dict(before[1])
        scaler.load_state_dict(before[2])
        if ema is not None:
            ema.load_state_dict(before[3])
        if stepper.gradients is not None:
            stepper.gradients.load_state_dict(empty_gradients)
        gen.manual_seed(stepper.cfg.seed)
        torch.manual_seed(stepper.cfg.seed)
        raise
    result.history = [dict(row) for row in state["history"]]
    result.best_epoch, result.best_test_acc = state["best_epoch"], state["best_test_acc"]
    result.train_seconds = sum(row["seconds"] for row in result.history)
    result.resumed_epoch = state["epoch"]
    return state["best_state"]


def fit(
    model: nn.Module,
    train: Data,
    test: Data,
    cfg: TrainConfig,
    prepare: PrepareFn,
    class_weights: torch.Tensor | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    name: str = "model",
    resume_path: str | Path | None = None,
    resume_key: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train = (uint8 images, int64 targets)``, evaluating on ``test`` each epoch.

    ``on_epoch`` receives each epoch's row of the history: ``epoch`` (1-based), ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc``, ``lr`` (at the epoch's last step), ``seconds`` (training
    time of the epoch) and ``images_per_sec``; after a resume, first the rows of the restored epochs.

    ``resume_path``: where the resume state is saved after every epoch and read at the start;
    ``resume_key``: names and hashes of what determines the result (e.g. ``{"params": ..., "data": ...,
    "code": ...}``); a saved state with other values is ignored, naming the keys that differ. Deleting
    the state once the outputs are written is the caller's job. See the module docstring for the choices made.

    Under torchrun every rank calls ``fit`` with the same arguments; the global batch stays
    ``cfg.batch_size`` (each rank trains on its share of every batch); every rank returns the same result,
    but only rank 0 saves the resume state, prints and shows progress (see the module docstring).
    """
    train, test = _check_data(train, "train"), _check_data(test, "test")
    cfg.validate(len(train[0]))
    if cfg.small_crop_epochs:
        if train[1].ndim != 1:
            raise UserError(f"training small_crop_epochs={cfg.small_crop_epochs} crops the images only: it is for "
                            "classifiers (one label per image), not for mask targets; set it to 0")
        if cfg.small_crop_size >= min(train[0].shape[-2:]):
            raise UserError(f"training small_crop_size={cfg.small_crop_size} is not smaller than the "
                            f"{train[0].shape[-2]}x{train[0].shape[-1]} training images: use a smaller window "
                            "or small_crop_epochs: 0")
    world = distributed.world_size()
    if cfg.batch_size % world:
        raise UserError(f"training batch_size={cfg.batch_size} cannot be split over {world} processes: "
                        f"use a batch size divisible by {world}")
    stepper = _Stepper(model, cfg, prepare, class_weights, len(train[0]) // cfg.batch_size, name)
    if cfg.grad_every > stepper.steps_per_epoch and stepper.main:
        log.warning("%s: grad_every=%d exceeds the %d steps of an epoch: some epochs record no gradients", name,
                    cfg.grad_every, stepper.steps_per_epoch)
    owns_group = distributed.setup(stepper.device)
    try:
        with distributed.sync_batchnorm(model, stepper.device):
            stepper.distribute()
            return _fit(stepper, train, test, on_epoch, resume_path, resume_key)
    finally:
        if owns_group:
            distributed.teardown()


def _fit(
    stepper: _Stepper,
    train: Data,
    test: Data,
    on_epoch: Callable[[dict], None] | None,
    resume_path: str | Path | None,
    resume_key: Mapping[str, str] | None,
) -> TrainResult:
    model, cfg, prepare, name, device = stepper.model, stepper.cfg, stepper.prepare, stepper.name, stepper.device
    class_weights, main = stepper.weights, stepper.main
    evaluated = stepper.eval_model  # the model itself, or its weight average (cfg.ema_epochs)

    def evaluate_test() -> tuple[float, float]:
        return _evaluate_all_ranks(evaluated, test, prepare, cfg.eval_batch_size, device, class_weights,
                                   stepper.amp, cfg.eval_flip)

    result = TrainResult()
    best_state = _snapshot(evaluated)
    gen = torch.Generator().manual_seed(cfg.seed)
    resume_path = None if resume_path is None else Path(resume_path)
    resume_key = dict(resume_key or {})
    start = 1  # the first epoch this call trains
    saved = 0  # the last epoch whose resume state is on disk
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(cfg.seed + stepper.rank)  # under torchrun each rank draws its own dropout masks
        state = None if resume_path is None or not main else _read_resume_state(resume_path, resume_key, stepper)
        state = distributed.broadcast_object(state)  # rank 0 reads; every rank loads the same state
        if state is not None:
            try:
                saved_best = _restore(state, stepper, result, gen)
            except Exception as err:  # noqa: BLE001 - a state that does not fit this model is ignored
                (log.warning if main else log.debug)(
                    "ignoring the resume state %s, it does not fit %s (%s); training from scratch",
                    resume_path, name, type(err).__name__,
                )
                result = TrainResult()
            else:
                best_state = _snapshot(evaluated) if saved_best is None else saved_best
                saved = state["epoch"]
                start = saved + 1
                if main:
                    print(f"resuming {name} at epoch {start}/{cfg.epochs}" if start <= cfg.epochs else
                          f"resuming {name}: all {cfg.epochs} epochs were done", flush=True)
                if on_epoch is not None:
                    for row in result.history:
                        on_epoch(dict(row))
        per_epoch = stepper.steps_per_epoch * cfg.batch_size
        bar = tqdm(total=cfg.epochs * per_epoch, initial=(start - 1) * per_epoch, desc=name, unit="img",
                   disable=not (cfg.show_progress and main), dynamic_ncols=True, smoothing=0.1)
        run_start = time.perf_counter()
        try:
            for epoch in range(start, cfg.epochs + 1):
                try:
                    row = {"epoch": epoch, **stepper.train_epoch(train, epoch, gen, bar)}
                    test_loss, test_acc = evaluate_test()
                    if not math.isfinite(test_loss):
                        raise _Diverged(test_loss)
                except _Diverged as err:
                    if stepper.gradients is not None:
                        stepper.gradients.discard_epoch()
                    result.diverged_epoch = epoch
                    (log.warning if main else log.debug)(
                        "%s diverged in epoch %d (loss %s); stopped and restored the weights of %s",
                        name, epoch, err.loss, f"epoch {result.best_epoch}" if result.best_epoch else "initialisation",
                    )
                    break
                row.update(test_loss=test_loss, test_acc=test_acc)
                row = {key: row[key] for key in HISTORY_KEYS}
                result.history.append(row)
                result.train_seconds += row["seconds"]
                if stepper.gradients is not None:
                    stepper.gradients.close_epoch(epoch)
                if result.best_test_acc is None or test_acc > result.best_test_acc:
                    result.best_epoch, result.best_test_acc = epoch, test_acc
                    if epoch < cfg.epochs:  # only needed to recover from a later divergence
                        best_state = _snapshot(evaluated)
                if on_epoch is not None:
                    on_epoch(dict(row))
                if main:
                    eta = (time.perf_counter() - run_start) / (epoch - start + 1) * (cfg.epochs - epoch)
                    bar.write(epoch_line(name, row, cfg.epochs, eta))
                if resume_path is not None:
                    ranks_rng = distributed.gather_objects(_rank_rng(device)) if distributed.active() else None
                    if main:
                        state = _resume_state(stepper, resume_key, result, best_state, gen, ranks_rng)
                        save_torch(resume_path, state)
                    saved = epoch
        except KeyboardInterrupt:  # a state is on disk once an epoch was restored or (being) saved
            resume = "; rerun to resume" if resume_path is not None and (saved or result.history) else ""
            raise Interrupted(f"{name} stopped after {len(result.history)}/{cfg.epochs} epochs{resume}") from None
        finally:
            bar.close()
    result.gradients = stepper.gradients
    if result.history:
        result.images_per_sec = len(result.history) * stepper.steps_per_epoch * cfg.batch_size / result.train_seconds
    if result.diverged_epoch is None:
        result.test_loss, result.test_acc = result.history[-1]["test_loss"], result.history[-1]["test_acc"]
        if evaluated is not model:  # the model returns holding the weights that were evaluated; counters (BN's
            # num_batches_tracked), which an average would truncate, stay the model's own
            counters = {k: v for k, v in model.state_dict().items() if not v.is_floating_point()}
            model.load_state_dict({**evaluated.state_dict(), **counters})
    else:
        model.load_state_dict(best_state)
        if result.best_epoch:
            kept = result.history[result.best_epoch - 1]
            result.test_loss, result.test_acc = kept["test_loss"], kept["test_acc"]
        else:
            result.test_loss, result.test_acc = _evaluate_all_ranks(
                model, test, prepare, cfg.eval_batch_size, device, class_weights, stepper.amp, cfg.eval_flip
            )
    return result
