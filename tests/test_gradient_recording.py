"""Gradients over training (``TrainConfig.grad_every``, :class:`cnnlab.gradient_recording.EpochGradients`): the
table's shape, its values against a direct computation, no effect on training, unused layers, resume, and
the README's claim on small synthetic data."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.augment import make_prepare
from cnnlab.compare import first_last_epochs, over_training_table
from cnnlab.gradient_recording import TRAINING_COLUMNS, TRAINING_STATS, EpochGradients, training_gradients_frame
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.training import TrainConfig, fit
from tests.test_training import MEAN, STD, small_net, texture_data, without_timing

PREPARE = make_prepare(MEAN, STD, augment=True, channels_last=True)


def config(**overrides) -> TrainConfig:
    settings = dict(epochs=2, batch_size=32, lr=0.05, device="cpu", show_progress=False, eval_batch_size=100)
    return TrainConfig(**{**settings, **overrides})


def test_the_table_has_one_row_per_epoch_layer_and_statistic():
    train, test = texture_data(128, seed=0), texture_data(32, seed=1)
    model = small_net()
    result = fit(model, train, test, config(epochs=3, grad_every=2), PREPARE)
    table = result.gradients.to_frame()
    n_layers = len([m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert list(table.columns) == list(TRAINING_COLUMNS)
    assert len(table) == 4 * n_layers * len(TRAINING_STATS)  # epochs 0 (initial weights), 1, 2, 3
    assert not table.duplicated(["epoch", "layer_index", "statistic"]).any()
    assert sorted(table["epoch"].unique()) == [0, 1, 2, 3]
    assert set(table["statistic"]) == set(TRAINING_STATS)
    assert (table["value"] > 0).all() and table["value"].map(math.isfinite).all()
    assert table[table["layer_index"] == 0]["layer"].unique().tolist() == ["stem.conv"]


def test_recording_off_gives_no_record_and_an_empty_table_with_the_columns():
    result = fit(small_net(), texture_data(64, 0), texture_data(32, 1), config(epochs=1), PREPARE)
    assert result.gradients is None
    empty = training_gradients_frame(None)
    assert list(empty.columns) == list(TRAINING_COLUMNS) and empty.empty
    assert first_last_epochs(empty).empty


def test_one_step_equals_a_direct_computation():
    """One epoch of one full batch (no augmentation, fp32): epoch 0 and epoch 1 both hold the gradient at the
    initial weights, which a direct forward/backward reproduces."""
    images, labels = texture_data(32, seed=0)
    prepare = make_prepare(MEAN, STD, augment=False, channels_last=False)
    model = small_net()
    reference = copy.deepcopy(model)
    cfg = config(epochs=1, batch_size=32, grad_every=1, amp=False, channels_last=False, ema_epochs=0)
    table = fit(model, (images, labels), texture_data(16, 1), cfg, prepare).gradients.to_frame()

    reference.train()
    F.cross_entropy(reference(prepare(images, True, None)), labels).backward()
    layers = [(name, m.weight.grad) for name, m in reference.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for epoch in (0, 1):
        got = table[table["epoch"] == epoch].pivot(index="layer_index", columns="statistic", values="value")
        assert len(got) == len(layers)
        for index, (name, grad) in enumerate(layers):
            g = grad.double()
            expected = {"grad_mean_abs": g.abs().mean().item(), "grad_rms": g.pow(2).mean().sqrt().item(),
                        "grad_l2": g.norm().item()}
            for stat, value in expected.items():
                assert got.loc[index, stat] == pytest.approx(value, rel=1e-4), (epoch, name, stat)


def test_recording_does_not_change_the_training_result():
    train, test = texture_data(128, seed=0), texture_data(32, seed=1)
    runs = []
    for every in (0, 1, 3):
        model = small_net()
        result = fit(model, train, test, config(grad_every=every), PREPARE)
        runs.append((without_timing(result.history), model.state_dict()))
    for history, weights in runs[1:]:
        assert history == runs[0][0]
        assert all(torch.equal(weights[k], runs[0][1][k]) for k in weights)  # bit for bit on the CPU


class WithUnusedBranch(nn.Module):
    """A conv net with a registered layer its forward pass never calls (as a no-skip ResNet-18's projections)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.unused = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def test_layers_without_a_gradient_get_no_rows():
    torch.manual_seed(0)
    table = fit(WithUnusedBranch(), texture_data(64, 0), texture_data(32, 1), config(grad_every=1),
                PREPARE).gradients.to_frame()
    assert sorted(table["layer"].unique()) == ["conv", "fc"]  # "unused" (index 1) has no fake zeros
    assert sorted(table["layer_index"].unique()) == [0, 2]


def test_a_resumed_run_records_the_same_table(tmp_path):
    train, test = texture_data(96, seed=0), texture_data(32, seed=1)
    state = tmp_path / "state.pt"

    def run(stop_after: int | None = None) -> pd.DataFrame:
        def on_epoch(row: dict) -> None:
            if row["epoch"] == stop_after:
                raise KeyboardInterrupt

        result = fit(small_net(), train, test, config(epochs=3, grad_every=2), PREPARE, on_epoch=on_epoch,
                     resume_path=state, resume_key={"params": "p"})
        return result.gradients.to_frame()

    reference = run()
    state.unlink()
    with pytest.raises(KeyboardInterrupt):
        run(stop_after=2)  # the state of epoch 1 is on disk
    assert state.is_file()
    resumed = run()
    assert resumed.to_csv(index=False) == reference.to_csv(index=False)


def test_a_state_saved_without_recording_is_ignored_by_a_run_with_it(tmp_path):
    train, test = texture_data(64, seed=0), texture_data(32, seed=1)
    state = tmp_path / "state.pt"
    fit(small_net(), train, test, config(epochs=2), PREPARE, resume_path=state, resume_key={"params": "p"})
    result = fit(small_net(), train, test, config(epochs=2, grad_every=1), PREPARE, resume_path=state,
                 resume_key={"params": "p"})
    assert result.resumed_epoch == 0 and sorted(result.gradients.to_frame()["epoch"].unique()) == [0, 1, 2]


def test_epochs_without_a_recorded_step_have_no_rows():
    # 2 steps per epoch, every 3rd step: steps 0 (epochs 0 and 1), 3 (epoch 2), 6 (epoch 4); epoch 3 has none
    table = fit(small_net(), texture_data(64, 0), texture_data(32, 1), config(epochs=4, grad_every=3),
                PREPARE).gradients.to_frame()
    assert sorted(table["epoch"].unique()) == [0, 1, 2, 4]


def test_state_dict_round_trip_and_layer_mismatch():
    model = small_net()
    record = EpochGradients(model)
    F.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3])).backward()
    record.record()
    record.close_epoch(1)
    copy_ = EpochGradients(model)
    copy_.load_state_dict(record.state_dict())
    assert copy_.to_frame().equals(record.to_frame())
    with pytest.raises(ValueError, match="other layers"):
        EpochGradients(WithUnusedBranch()).load_state_dict(record.state_dict())


def test_over_training_table_stacks_first_and_last_epochs():
    frames = {}
    for arch in ("plain", "residual"):
        result = fit(small_net(), texture_data(64, 0), texture_data(32, 1), config(epochs=2, grad_every=1), PREPARE)
        frames[f"{arch}-8-relu-bn-0"] = result.gradients.to_frame()
    table = over_training_table(frames)
    assert list(table.columns[:2]) == ["model", "panel"]
    assert set(table["model"]) == {"plain-8 epoch 0", "plain-8 epoch 2", "residual-8 epoch 0", "residual-8 epoch 2"}
    assert set(table["statistic"]) == {"grad_rms"} and set(table["panel"]) == {"8-relu-bn-0"}


def first_layer_rms(arch: str, init: str) -> pd.Series:
    """First-layer RMS gradient per epoch of a depth-20 tanh / no-BN net trained 3 epochs on 16x16 textures."""
    torch.manual_seed(0)
    model = build_cifar_net(CifarNetConfig(arch, 20, activation="tanh", batchnorm=False, init=init, num_classes=4))
    result = fit(model, texture_data(256, 0), texture_data(64, 1), config(epochs=3, grad_every=1, amp=False), PREPARE)
    table = result.gradients.to_frame()
    rows = table[(table["statistic"] == "grad_rms") & (table["layer_index"] == 0)]
    return rows.set_index("epoch")["value"]


def test_readme_claim_plain_tanh_first_layer_gradient_vanishes_over_training_with_the_default_init():
    """README: with PyTorch's default init the plain tanh / no-BN net's first-layer gradient stays orders of
    magnitude below the residual net's at every recorded epoch; with the scaled init both start in the same
    decade."""
    plain, residual = first_layer_rms("plain", "default"), first_layer_rms("residual", "default")
    assert list(plain.index) == [0, 1, 2, 3]
    assert (plain < residual / 100).all(), (plain, residual)
    plain, residual = first_layer_rms("plain", "scaled"), first_layer_rms("residual", "scaled")
    assert residual[0] / 10 < plain[0] < residual[0] * 10


def test_a_coarse_grad_every_warns(caplog: pytest.LogCaptureFixture):
    fit(small_net(), texture_data(64, 0), texture_data(32, 1), config(epochs=1, grad_every=3), PREPARE, name="net")
    assert "net: grad_every=3 exceeds the 2 steps of an epoch" in caplog.text


def test_the_over_training_figure_draws_both_architectures_and_the_losses(tmp_path):
    from cnnlab.figures.gradients import gradients_over_training
    from cnnlab.figures.style import save_figure

    gradients, curves = {}, {}
    for arch in ("plain", "residual"):
        torch.manual_seed(0)
        model = build_cifar_net(CifarNetConfig(arch, 8, num_classes=4))
        result = fit(model, texture_data(64, 0), texture_data(32, 1), config(epochs=2, grad_every=1), PREPARE)
        gradients[arch] = result.gradients.to_frame()
        curves[arch] = pd.DataFrame({"epoch": [1, 2], "train_loss": [row["train_loss"] for row in result.history]})
    fig = gradients_over_training(gradients, curves, "t")
    first, last, loss = fig.axes[:3]
    assert len(first.lines) == len(last.lines) == len(loss.lines) == 2
    assert first.get_yscale() == "log" and "epoch: 0" in first.get_title() and "epoch: 2" in last.get_title()
    save_figure(fig, tmp_path / "f.png")
    off = gradients_over_training({a: training_gradients_frame(None) for a in gradients}, curves, "t")
    assert "not recorded" in off.axes[0].texts[0].get_text()
    save_figure(off, tmp_path / "off.png")
