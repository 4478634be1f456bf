"""Localisation metrics on hand-made maps, boxes and a model whose score is the sum of a pixel region."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.metrics.localization import (
    box_mask,
    deletion_auc,
    deletion_curve,
    deletion_order,
    energy_in_box,
    localization_summary,
    pointing_game,
)


def peak_map(y: int, x: int, size: int = 6) -> torch.Tensor:
    maps = torch.zeros(1, size, size)
    maps[0, y, x] = 1.0
    return maps


def test_box_mask_uses_exclusive_ends_like_slicing() -> None:
    mask = box_mask(torch.tensor([[1.0, 2.0, 4.0, 3.0], [0.5, 0.0, 2.0, 1.0]]), 4, 5)
    expected = torch.zeros(2, 4, 5, dtype=torch.bool)
    expected[0, 2:3, 1:4] = True
    expected[1, 0, 1] = True  # 0.5 <= x < 2 holds for pixel column 1 only
    assert torch.equal(mask, expected)


@pytest.mark.parametrize(
    ("box", "tolerance", "hit"),
    [
        ((3, 2, 4, 3), 0.0, True),  # the box is exactly the peak pixel
        ((0, 0, 3, 3), 0.0, False),  # peak at x=3 is just past the exclusive end
        ((0, 0, 3, 3), 1.0, True),  # ... but within 1 px
        ((0, 0, 3, 2), 1.0, False),  # diagonal neighbour: sqrt(2) px away
        ((0, 0, 3, 2), 1.5, True),
        ((2, 2, 2, 5), 10.0, False),  # empty box never hits
    ],
)
def test_pointing_game_peak_inside_outside_and_tolerance(box: tuple, tolerance: float, hit: bool) -> None:
    result = pointing_game(peak_map(2, 3), torch.tensor([box], dtype=torch.float32), tolerance)
    assert result.dtype == torch.bool and result.tolist() == [hit]


def test_pointing_game_ties_and_constant_maps() -> None:
    plateau = torch.zeros(1, 6, 6)
    plateau[0, 0, 0] = plateau[0, 5, 5] = 1.0  # two maximal pixels, only the second in the box
    constant = torch.zeros(1, 6, 6)
    box = torch.tensor([[4.0, 4.0, 6.0, 6.0]])
    assert pointing_game(plateau, box).tolist() == [True]
    assert pointing_game(constant, torch.tensor([[0.0, 0.0, 6.0, 6.0]])).tolist() == [False]


def test_energy_in_box_is_the_exact_mass_fraction() -> None:
    maps = torch.stack([torch.arange(16.0).view(4, 4), torch.zeros(4, 4)])
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    torch.testing.assert_close(energy_in_box(maps, boxes), torch.tensor([(0 + 1 + 4 + 5) / 120.0, 0.0]))


def test_metrics_reject_bad_inputs() -> None:
    with pytest.raises(UserError, match="non-negative"):
        energy_in_box(-torch.ones(1, 2, 2), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(UserError, match=r"boxes \[N, 4\].*got \(2, 4\)"):
        pointing_game(torch.ones(1, 2, 2), torch.zeros(2, 4))
    with pytest.raises(UserError, match="NaN"):
        pointing_game(torch.full((1, 2, 2), float("nan")), torch.zeros(1, 4))


class RegionScore(nn.Module):
    """Two classes: logit 0 = 0.25 * sum of all channels over the top-left 2x2 pixels, logit 1 = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 0.25 * x[:, :, :2, :2].sum(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def region_heatmap(n: int, size: int) -> torch.Tensor:
    """Highest on the scored 2x2 region, then decreasing in row-major order elsewhere (no ties)."""
    maps = torch.linspace(0.5, 0.0, size * size).view(1, size, size).repeat(n, 1, 1)
    maps[:, :2, :2] = 1.0 + torch.arange(4.0).view(2, 2)
    return maps


def test_deletion_curve_exact_for_region_model() -> None:
    # 2 channels of ones: the intact logit is 0.25 * 2 * 4 = 2. Step 1 deletes 4 of 16 pixels, all in the
    # region, both channels at once, so the logit drops to 0 (probability 1/2) and stays there.
    x = torch.ones(2, 2, 4, 4)
    probs = deletion_curve(RegionScore(), x, region_heatmap(2, 4), classes=0, steps=4)
    expected = torch.tensor([torch.sigmoid(torch.tensor(2.0)).item(), 0.5, 0.5, 0.5, 0.5]).repeat(2, 1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(deletion_auc(probs), torch.full((2,), (expected[0, 0].item() + 0.5) / 8 + 0.375))


def test_deletion_heatmap_order_beats_random_and_random_is_reproducible() -> None:
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    maps = region_heatmap(3, 8)
    model = RegionScore()
    heat = deletion_curve(model, x, maps, classes=0, steps=16)
    rand, again = (
        deletion_curve(model, x, maps, classes=0, steps=16, order="random", generator=torch.Generator().manual_seed(1))
        for _ in range(2)
    )
    assert torch.equal(rand, again)
    for curve in (heat, rand):  # removing positive pixels can only lower the score
        assert bool((curve.diff(dim=1) <= 1e-7).all())
    torch.testing.assert_close(heat[:, 0], rand[:, 0])
    torch.testing.assert_close(heat[:, -1], torch.full((3,), 0.5))
    torch.testing.assert_close(rand[:, -1], torch.full((3,), 0.5))
    assert bool((deletion_auc(heat) < deletion_auc(rand)).all())


def test_deletion_order_ranks() -> None:
    maps = torch.tensor([[[0.0, 2.0], [2.0, 1.0]]])
    assert deletion_order(maps).tolist() == [[3, 0, 1, 2]]  # ties in row-major order
    ranks = deletion_order(torch.zeros(4, 3, 3), "random", torch.Generator().manual_seed(0))
    assert all(sorted(row) == list(range(9)) for row in ranks.tolist())
    assert len({tuple(row) for row in ranks.tolist()}) > 1  # an independent permutation per image
    with pytest.raises(UserError, match="deletion order 'insertion' is unknown"):
        deletion_order(maps, "insertion")


def test_deletion_curve_default_class_is_the_intact_prediction_and_model_mode_is_kept() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).train()
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x).softmax(1).amax(1)
    probs = deletion_curve(model, x, torch.rand(2, 4, 4), steps=2)
    assert probs.shape == (2, 3) and model.training
    torch.testing.assert_close(probs[:, 0], expected)
    with pytest.raises(UserError, match="do not match images"):
        deletion_curve(model, x, torch.rand(2, 4, 3))
    with pytest.raises(UserError, match="positive integer"):
        deletion_curve(model, x, torch.rand(2, 4, 4), steps=0)


def test_deletion_auc_of_known_curves() -> None:
    curves = torch.tensor([[1.0, 0.75, 0.5, 0.25, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(deletion_auc(curves), torch.tensor([0.5, 1.0, 0.125]))
    with pytest.raises(UserError, match="at least 2 points"):
        deletion_auc(torch.ones(3, 1))


def test_localization_summary_keys_and_values() -> None:
    x = torch.ones(2, 1, 4, 4)
    maps = region_heatmap(2, 4)
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 4.0, 4.0]])
    generator = torch.Generator().manual_seed(0)
    summary = localization_summary(RegionScore(), x, maps, boxes, classes=0, steps=4, generator=generator)
    assert set(summary) == {"pointing_game", "energy_in_box", "deletion_auc", "deletion_auc_random"}
    assert summary["pointing_game"] == 0.5
    assert summary["deletion_auc"] <= summary["deletion_auc_random"]
