"""Per-layer gradient statistics recorded *during* training, averaged per epoch (:class:`EpochGradients`).

:func:`cnnlab.training.fit` records them with ``grad_every = k > 0`` (``train_classifier.grad_every``) after
the backward pass and before the optimiser step of every k-th step; ``train_classifier`` writes the table
(:func:`training_gradients_frame`) to ``plots/train_classifier/<key>/gradients.csv``. The statistics are those
of :mod:`cnnlab.gradients` (``grad_mean_abs``, ``grad_rms``, ``grad_l2`` of each weight layer's gradient),
over the same layers (:func:`_weight_modules`, which lives here so that both modules share it).

A module of its own, apart from :mod:`cnnlab.gradients`: every training stage imports the training loop and
with it this module (a DVC code dependency), so editing the K-iteration measurements and their summaries does
not rerun the trainings.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

# --------------------------------------------------------------------------------------------------
# Which parameters count as layers


def _layer_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def _weight_modules(model: nn.Module) -> list[tuple[str, str, nn.Parameter]]:
    """``(module name, kind, weight)`` of every trainable conv/linear weight, in registration order."""
    layers, seen = [], set()
    for name, module in model.named_modules():
        kind = _layer_kind(module)
        weight = getattr(module, "weight", None)
        if kind is None or not isinstance(weight, nn.Parameter) or not weight.requires_grad:
            continue
        if id(weight) in seen:  # a tied weight counts once, at its first use
            continue
        seen.add(id(weight))
        layers.append((name, kind, weight))
    return layers


# --------------------------------------------------------------------------------------------------
# During training: per-epoch averages (cnnlab.training.fit with ``grad_every > 0``)

#: The statistics :class:`EpochGradients` records per weight layer and epoch (each the mean over the epoch's
#: recorded steps of the per-step value defined in :mod:`cnnlab.gradients`).
TRAINING_STATS = ("grad_mean_abs", "grad_rms", "grad_l2")
#: The columns of :meth:`EpochGradients.to_frame` (one row per epoch, layer and statistic: a tidy table).
TRAINING_COLUMNS = ("epoch", "layer_index", "layer", "kind", "n_params", "statistic", "value")


class EpochGradients:
    """Per-layer gradient statistics over a training run, averaged per epoch.

    The training loop calls :meth:`record` after the backward pass and before the optimiser step (on every
    k-th step), :meth:`snapshot` once after the very first recording (epoch 0: the gradient at the
    initial weights, on the first batch) and :meth:`close_epoch` after each completed epoch. What an epoch
    row holds is the mean over that epoch's recorded steps of each step's ``grad_mean_abs``, ``grad_rms``
    and ``grad_l2`` (defined in :mod:`cnnlab.gradients`), per weight layer (:func:`cnnlab.gradients.weight_layers`).

    A layer whose ``.grad`` is ``None`` at a step (its module was not used by the forward pass, e.g. the
    projection shortcuts of a ResNet-18 without skips) is not counted at that step; a layer that had no
    gradient in a whole epoch gets no rows for it (no fake zeros). A non-finite step value (an fp16
    overflow step, which the gradient scaler skips) is left out of the mean in the same way.

    Speed: one multi-tensor L1 and one L2 norm over all layers per recorded step, accumulated on the device;
    the host sees the sums once per epoch (:meth:`close_epoch`). :meth:`state_dict` / :meth:`load_state_dict`
    carry the finished epochs through a resume (tensors and plain lists only: loadable with
    ``weights_only=True``).
    """

    def __init__(self, model: nn.Module) -> None:
        layers = _weight_modules(model)
        if not layers:
            raise ValueError(f"{type(model).__name__} has no trainable Conv or Linear weights to record")
        self.names = [name for name, _, _ in layers]
        self.kinds = [kind for _, kind, _ in layers]
        self.weights = [weight for _, _, weight in layers]
        self.n_params = torch.tensor([w.numel() for w in self.weights], dtype=torch.float64)
        self.epochs: list[int] = []
        self.values: list[torch.Tensor] = []  # per finished epoch: [len(TRAINING_STATS), n_layers] float64, NaN = none
        self._index_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._reset()

    def _reset(self) -> None:
        device = self.weights[0].device
        self._sums = torch.zeros(2, len(self.weights), dtype=torch.float64, device=device)  # L1 and L2 norms
        self._counts = torch.zeros(len(self.weights), dtype=torch.float64, device=device)

    @torch.no_grad()
    def record(self) -> None:
        """Add every layer's current gradient norms to the epoch's sums (on the device: no host sync)."""
        present = tuple(i for i, w in enumerate(self.weights) if w.grad is not None)
        if not present:
            return
        grads = [self.weights[i].grad for i in present]
        norms = torch.stack([torch.stack(torch._foreach_norm(grads, 1)),
                             torch.stack(torch._foreach_norm(grads, 2))]).double()  # [2, len(present)]
        finite = torch.isfinite(norms).all(dim=0)
        norms = torch.where(finite, norms, 0.0)
        if len(present) == len(self.weights):
            self._sums += norms
            self._counts += finite
        else:  # some layers without a gradient: add into the present ones' columns only
            index = self._index_cache.get(present)
            if index is None:
                index = self._index_cache[present] = torch.tensor(present, device=norms.device)
            self._sums.index_add_(1, index, norms)
            self._counts.index_add_(0, index, finite.double())

    def _means(self) -> torch.Tensor:
        sums, counts = self._sums.cpu(), self._counts.cpu()  # the host transfer
        n = self.n_params
        with torch.no_grad():
            mean_abs = sums[0] / n / counts
            rms = sums[1] / n.sqrt() / counts
            l2 = sums[1] / counts
        values = torch.stack([mean_abs, rms, l2])
        return torch.where(counts > 0, values, torch.nan)  # 0/0: the layer had no gradient

    def snapshot(self, epoch: int) -> None:
        """Store the current sums' means as ``epoch`` without resetting them (epoch 0 = the first step)."""
        self.epochs.append(epoch)
        self.values.append(self._means())

    def close_epoch(self, epoch: int) -> None:
        """Store the means of the epoch's recorded steps as ``epoch`` and start a new epoch."""
        self.snapshot(epoch)
        self._reset()

    def discard_epoch(self) -> None:
        """Forget the steps recorded since the last :meth:`close_epoch` (an epoch that did not complete)."""
        self._reset()

    def state_dict(self) -> dict:
        return {"layers": list(self.names), "epochs": list(self.epochs),
                "values": torch.stack(self.values) if self.values else torch.zeros(0, len(TRAINING_STATS),
                                                                                   len(self.names))}

    def load_state_dict(self, state: dict) -> None:
        """Restore the finished epochs saved by :meth:`state_dict` (the model's layers must be the same)."""
        if list(state["layers"]) != self.names:
            raise ValueError("the saved gradient record belongs to other layers")
        values = state["values"]
        if values.shape[1:] != (len(TRAINING_STATS), len(self.names)) or len(values) != len(state["epochs"]):
            raise ValueError("the saved gradient record has the wrong shape")
        self.epochs = [int(e) for e in state["epochs"]]
        self.values = [v.to(torch.float64) for v in values]
        self._reset()

    def to_frame(self) -> pd.DataFrame:
        """The tidy table: one row per (epoch, layer, statistic) in that order; columns :data:`TRAINING_COLUMNS`.
        Layers without a gradient in an epoch have no rows for it."""
        rows = []
        for epoch, values in zip(self.epochs, self.values, strict=True):
            for layer in range(len(self.names)):
                for s, stat in enumerate(TRAINING_STATS):
                    value = float(values[s, layer])
                    if not math.isnan(value):
                        rows.append((epoch, layer, self.names[layer], self.kinds[layer], int(self.n_params[layer]),
                                     stat, value))
        return pd.DataFrame(rows, columns=list(TRAINING_COLUMNS))


def training_gradients_frame(record: EpochGradients | None) -> pd.DataFrame:
    """``record``'s tidy table, or (recording off: None) an empty table with the same columns."""
    return record.to_frame() if record is not None else pd.DataFrame(columns=list(TRAINING_COLUMNS))
