"""Per-layer gradient statistics: do gradients reach the first layers of a deep network?

The measurement: from a given (seeded) initialisation or checkpoint, run ``K`` iterations of SGD on
cross-entropy and, after each backward pass and *before* the optimizer step, record for every weight
layer (convolutions, 1x1 projection shortcuts and linear layers; not BatchNorm, not biases) of ``g`` =
the layer's weight gradient with ``n`` entries and ``w`` = its weight:

==================  =======================================================================
``grad_mean_abs``   ``sum |g| / n``            mean absolute gradient per parameter
``grad_rms``        ``sqrt(sum g^2 / n)``      root-mean-square gradient per parameter
``grad_l2``         ``sqrt(sum g^2)``          L2 norm of the whole gradient (grows with ``n``)
``grad_std``        ``sqrt(rms^2 - mean^2)``   population standard deviation (``correction=0``)
``weight_l2``       ``sqrt(sum w^2)``          L2 norm of the weight the gradient was taken at
``loss``            the iteration's mini-batch loss (the same on every row of an iteration)
==================  =======================================================================

The gradients are those of the data loss alone; weight decay enters only the optimizer step. The
model is in training mode throughout (BatchNorm normalises with batch statistics, as in training).

Speed: all layers are reduced at once from the ``.grad`` tensors with PyTorch's multi-tensor
("foreach") norms -- a handful of kernel launches per iteration, no extra backward pass and no host
synchronisation; the per-iteration results stay on the device and come to the host in one
transfer when the table is built. :func:`recording_overhead` times the loop with and without it.
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError
from cnnlab.gradient_recording import _weight_modules

Batch = tuple[torch.Tensor, torch.Tensor]

#: The per-layer statistics in every row of :func:`record_gradient_stats`'s table.
STAT_COLUMNS = ("grad_mean_abs", "grad_rms", "grad_l2", "grad_std", "weight_l2")
#: Statistics :func:`summarize` compares between the first and the last weight layer.
SUMMARY_STATS = ("grad_mean_abs", "grad_l2", "grad_rms")
#: Statistics :func:`layer_profile` reports per layer.
PROFILE_STATS = ("grad_l2", "grad_rms", "grad_mean_abs")


# --------------------------------------------------------------------------------------------------
# Which parameters count as layers: see cnnlab.gradient_recording (shared with the recording during training)



def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every trainable convolution and linear weight as ``(module name, weight)``; BatchNorm is excluded.

    The order is the order in which the modules were registered (``model.named_modules()``). For
    networks defined in the order data flows through them -- the CIFAR family, ``nn.Sequential``
    stacks -- this is forward order: the stem first, the classifier last. A block's 1x1 projection
    shortcut runs in parallel with its residual branch; it is listed where its block registered it.
    Frozen weights (``requires_grad=False``) get no gradient and are left out.
    """
    return [(name, weight) for name, _, weight in _weight_modules(model)]


# --------------------------------------------------------------------------------------------------
# Recording


class GradientRecorder:
    """Collects per-layer gradient statistics of ``model`` after each backward pass.

    Usable inside any training loop::

        recorder = GradientRecorder(model)
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            recorder.record(loss)  # before optimizer.step()
            optimizer.step()
        table = recorder.to_frame()

    A weight without a gradient (not used by the forward pass) records zeros.
    """

    def __init__(self, model: nn.Module) -> None:
        layers = _weight_modules(model)
        if not layers:
            raise ValueError(f"{type(model).__name__} has no trainable Conv or Linear weights to record")
        self.names = [name for name, _, _ in layers]
        self.kinds = [kind for _, kind, _ in layers]
        self.weights = [weight for _, _, weight in layers]
        self.n_params = np.array([weight.numel() for weight in self.weights], dtype=np.int64)
        self._records: list[torch.Tensor] = []

    def __len__(self) -> int:
        """The number of iterations recorded so far."""
        return len(self._records)

    @torch.no_grad()
    def record(self, loss: torch.Tensor | float) -> None:
        """Reduce every layer's current ``.grad`` at once and keep the result on its device (no sync)."""
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        l1 = torch._foreach_norm(grads, 1)
        l2 = torch._foreach_norm(grads, 2)
        sums = [g.sum() for g in grads]  # no multi-tensor sum exists; one small kernel per layer
        weight_l2 = torch._foreach_norm(self.weights, 2)
        device = self.weights[0].device
        loss_t = torch.as_tensor(loss, device=device).detach().reshape(1).float()
        raw = torch.stack([t.float() for t in (*l1, *l2, *sums, *weight_l2)])
        self._records.append(torch.cat([raw, loss_t]))

    def to_frame(self) -> pd.DataFrame:
        """The tidy table: one row per (iteration, layer), iterations in recording order from 0."""
        n_layers = len(self.weights)
        columns = ["iteration", "layer_index", "layer_name", "kind", "n_params", *STAT_COLUMNS, "loss"]
        if not self._records:
            return pd.DataFrame(columns=columns)
        raw = torch.stack(self._records).cpu().double().numpy()  # the single host transfer
        k = raw.shape[0]
        l1, l2, sums, weight_l2 = raw[:, :-1].reshape(k, 4, n_layers).transpose(1, 0, 2)
        n = self.n_params.astype(np.float64)
        mean = sums / n
        rms = l2 / np.sqrt(n)
        with np.errstate(invalid="ignore"):  # NaN/inf gradients stay NaN/inf, without warnings
            std = np.sqrt(np.clip(rms * rms - mean * mean, 0.0, None))
        stats = {
            "grad_mean_abs": l1 / n,
            "grad_rms": rms,
            "grad_l2": l2,
            "grad_std": std,
            "weight_l2": weight_l2,
        }
        table = pd.DataFrame(
            {
                "iteration": np.repeat(np.arange(k), n_layers),
                "layer_index": np.tile(np.arange(n_layers), k),
                "layer_name": np.tile(np.array(self.names, dtype=object), k),
                "kind": np.tile(np.array(self.kinds, dtype=object), k),
                "n_params": np.tile(self.n_params, k),
                **{name: values.reshape(-1) for name, values in stats.items()},
                "loss": np.repeat(raw[:, -1], n_layers),
            }
        )
        return table[columns]


def _check_iterations(iterations: int) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserError(f"gradient_stats.iterations must be >= 1, got {iterations}")


def _sgd_loop(
    model: nn.Module,
    batches: Iterable[Batch],
    iterations: int,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    device: torch.device,
    train: bool,
    after_backward: Callable[[torch.Tensor], None] | None,
) -> None:
    """``iterations`` forward/backward passes of cross-entropy, each followed by an SGD step if ``train``."""
    model.train()
    optimizer = (
        torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay) if train else None
    )
    done = 0
    for x, y in itertools.islice(batches, iterations):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if after_backward is not None:
            after_backward(loss)
        if optimizer is not None:
            optimizer.step()
        done += 1
    if done < iterations:
        raise UserError(
            f"gradient_stats: the data gave only {done} batches but iterations={iterations}; "
            "lower gradient_stats.iterations or provide more batches"
        )


def record_gradient_stats(
    model: nn.Module,
    batches: Iterable[Batch],
    iterations: int,
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    device: torch.device | str = "cpu",
    train: bool = True,
) -> pd.DataFrame:
    """Per-layer gradient statistics over ``iterations`` SGD iterations; one row per (iteration, layer).

    ``batches`` yields ``(images, labels)``: float images ready for the model (already normalised)
    and int64 labels; the first ``iterations`` batches are used, and fewer is a :class:`UserError`.
    Row ``iteration=i`` holds the gradient at the weights reached after ``i`` steps.

    ``train=True`` takes an SGD step (``lr``, ``momentum``, ``weight_decay``) after each recording:
    the first ``K`` iterations of training from the given weights -- the right measurement at
    initialisation. ``train=False`` keeps the weights fixed (the SGD settings are unused) and
    measures the gradient on ``K`` different batches at exactly the given weights -- meant for
    trained checkpoints, where further steps at a large learning rate would perturb what is measured.

    The caller's ``model`` is not modified: a copy is moved to ``device`` and trained.
    """
    _check_iterations(iterations)
    device = torch.device(device)
    work = copy.deepcopy(model).to(device)
    recorder = GradientRecorder(work)
    _sgd_loop(
        work,
        batches,
        iterations,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        device=device,
        train=train,
        after_backward=recorder.record,
    )
    return recorder.to_frame()


def recording_overhead(
    model: nn.Module,
    batches: Sequence[Batch],
    iterations: int,
    *,
    repeats: int = 3,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Time ``iterations`` SGD iterations with and without recording (median of ``repeats`` runs each).

    Each run starts from a fresh copy of ``model`` on the same ``batches`` (a sequence, reused by
    every run); one untimed run warms up first. Returns ``seconds_without``, ``seconds_with`` and
    ``overhead`` = ``seconds_with / seconds_without - 1``.
    """
    _check_iterations(iterations)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)

    def run(record: bool) -> float:
        work = copy.deepcopy(model).to(device)
        recorder = GradientRecorder(work) if record else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        _sgd_loop(
            work,
            iter(batches),
            iterations,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            device=device,
            train=True,
            after_backward=recorder.record if recorder is not None else None,
        )
        if recorder is not None:
            recorder.to_frame()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(record=True)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        for record in (False, True):
            times[record].append(run(record))
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    return {"seconds_without": without, "seconds_with": with_, "overhead": with_ / without - 1.0}


# --------------------------------------------------------------------------------------------------
# Summaries


def _json_float(value: float) -> float | None:
    """A finite float as a plain ``float``; NaN or infinity as ``None`` (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(df: pd.DataFrame) -> dict:
    """Compare the first and the last weight layer, averaged over iterations; JSON-ready.

    For each ``stat`` in :data:`SUMMARY_STATS`: ``first_<stat>`` and ``last_<stat>`` (the mean over
    iterations of the first / last layer's value), ``<stat>_ratio`` = first / last (a ratio of
    means) and ``log10_<stat>_ratio``. A ratio far below 1 means vanishing gradients towards the
    input. Also ``first_layer``, ``last_layer``, ``n_layers``, ``iterations``, ``loss_first`` and
    ``loss_last`` (the first and the last iteration's loss) and ``diverged``.

    If any statistic or loss is NaN or infinite (the model diverged) the result has
    ``diverged=True`` and ``None`` for every number that could not be computed; it never raises.
    A ratio with a zero denominator is ``None`` too.
    """
    if df.empty:
        raise ValueError("summarize() needs at least one recorded iteration")
    numeric = df[[*STAT_COLUMNS, "loss"]].to_numpy(dtype=np.float64)
    diverged = not np.isfinite(numeric).all()
    first_index, last_index = int(df["layer_index"].min()), int(df["layer_index"].max())
    first = df[df["layer_index"] == first_index]
    last = df[df["layer_index"] == last_index]
    losses = df.groupby("iteration", sort=True)["loss"].first()
    out: dict = {
        "diverged": bool(diverged),
        "first_layer": str(first["layer_name"].iloc[0]),
        "last_layer": str(last["layer_name"].iloc[0]),
        "n_layers": int(df["layer_index"].nunique()),
        "iterations": int(df["iteration"].nunique()),
        "loss_first": _json_float(losses.iloc[0]),
        "loss_last": _json_float(losses.iloc[-1]),
    }
    for stat in SUMMARY_STATS:
        first_mean, last_mean = first[stat].to_numpy().mean(), last[stat].to_numpy().mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = first_mean / last_mean
            log_ratio = np.log10(ratio) if ratio > 0 else np.nan
        out[f"first_{stat}"] = _json_float(first_mean)
        out[f"last_{stat}"] = _json_float(last_mean)
        out[f"{stat}_ratio"] = _json_float(ratio)
        out[f"log10_{stat}_ratio"] = _json_float(log_ratio)
    return out


def layer_profile(df: pd.DataFrame) -> pd.DataFrame:
    """One row per layer (in layer order): its identity and, per stat in :data:`PROFILE_STATS`,
    ``<stat>_iter0`` (at the first iteration) and ``<stat>_mean`` (mean over all iterations; NaN if
    any iteration is NaN)."""
    keys = ["layer_index", "layer_name", "kind", "n_params"]
    stats = list(PROFILE_STATS)
    start = df[df["iteration"] == df["iteration"].min()]
    at_start = start.set_index(keys)[stats].add_suffix("_iter0")
    averaged = df.groupby(keys, sort=True)[stats].mean(skipna=False).add_suffix("_mean")  # NaN stays NaN
    profile = averaged.join(at_start).reset_index()
    ordered = [f"{stat}_{when}" for stat in PROFILE_STATS for when in ("iter0", "mean")]
    return profile[keys + ordered]


def first_last_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per iteration: the first and the last weight layer's statistics side by side, and
    ``ratio_mean_abs`` = first / last mean |grad| (the vanishing-gradient signal, per iteration)."""
    first_index, last_index = int(df["layer_index"].min()), int(df["layer_index"].max())
    stats = ["grad_mean_abs", "grad_l2", "grad_std", "grad_rms"]
    first = df[df["layer_index"] == first_index].set_index("iteration")[stats].add_prefix("first_")
    last = df[df["layer_index"] == last_index].set_index("iteration")[stats].add_prefix("last_")
    table = first.join(last)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio_mean_abs"] = table["first_grad_mean_abs"] / table["last_grad_mean_abs"]
    return table.reset_index()

