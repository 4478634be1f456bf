"""Comparison tables across models: plain vs residual accuracy, gradient statistics."""

import math

import pandas as pd
import pytest

from cnnlab.compare import (
    GRADIENT_HEADLINE,
    accuracy_by_depth,
    accuracy_csv,
    accuracy_table,
    classifier_labels,
    gradient_csv,
    gradient_headline,
    gradient_labels,
    gradient_markdown,
    gradient_table,
    split_gradient_name,
    stack_tables,
    table_metrics,
    to_markdown,
)
from cnnlab.errors import UserError
from cnnlab.pipeline import split_key
from cnnlab.tracking import CLASSIFICATION_CURVES, read_curves


def metric(key, acc, diverged_epoch=None):
    return {"model": key, "test_acc": acc, "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch}


def test_split_names():
    assert split_key("residual-56-tanh-nobn-0") == ("residual", 56, "tanh-nobn", 0)
    assert split_key("plain-8-relu-bn-12") == ("plain", 8, "relu-bn", 12)
    assert split_gradient_name("plain-20-tanh-nobn-scaled") == {
        "arch": "plain", "depth": 20, "variant": "tanh-nobn", "init": "scaled"}
    assert split_gradient_name("trained-residual-32-relu-bn-3") == {
        "arch": "residual", "depth": 32, "variant": "relu-bn", "init": "trained", "seed": 3}


def test_accuracy_table_pairs_plain_and_residual_per_depth():
    table = accuracy_table([metric("plain-20-relu-bn-0", 0.80), metric("residual-20-relu-bn-0", 0.85),
                            metric("plain-56-relu-bn-0", 0.70), metric("residual-56-relu-bn-0", 0.88)])
    assert table[["depth", "plain", "residual"]].values.tolist() == [[20, 0.80, 0.85], [56, 0.70, 0.88]]
    assert math.isclose(table.loc[1, "residual_minus_plain"], 0.18)
    assert table_metrics(table) == {"relu-bn": {
        "depth-20": {"plain": 0.8, "residual": 0.85, "residual_minus_plain": 0.05},
        "depth-56": {"plain": 0.7, "residual": 0.88, "residual_minus_plain": 0.18},
        "deepest": {"depth": 56, "plain": 0.7, "residual": 0.88, "residual_minus_plain": 0.18}}}
    md = to_markdown(table)
    assert "| relu-bn | 56 | 70.00 | 88.00 | +18.00 |" in md


def test_diverged_model_is_never_reported_as_a_number():
    table = accuracy_table([metric("plain-56-tanh-nobn-0", 0.1, diverged_epoch=3),
                            metric("residual-56-tanh-nobn-0", 0.6)])
    assert pd.isna(table.loc[0, "plain"]) and pd.isna(table.loc[0, "residual_minus_plain"])
    assert table.loc[0, "note"] == "plain diverged in epoch 3"
    assert table_metrics(table)["tanh-nobn"]["depth-56"]["plain"] is None
    assert "| tanh-nobn | 56 | — | 60.00 | — | plain diverged in epoch 3 |" in to_markdown(table)


# --- several training seeds per model: mean, sample std (ddof=1), n, the gap paired by seed -------------

#: seed -> (plain, residual) test accuracy at depth 20: plain 0.80/0.82/0.84 (mean 0.82, std 0.02),
#: residual 0.84/0.87/0.87 (mean 0.86, std sqrt(0.0003) = 0.01732), gaps 0.04/0.05/0.03 (mean 0.04, std 0.01)
THREE_SEEDS = {0: (0.80, 0.84), 1: (0.82, 0.87), 2: (0.84, 0.87)}


def three_seed_metrics(depth: int = 20) -> list[dict]:
    return [metric(f"{arch}-{depth}-relu-bn-{seed}", acc) for seed, accs in THREE_SEEDS.items()
            for arch, acc in zip(("plain", "residual"), accs, strict=True)]


def test_three_seeds_give_mean_sample_std_and_paired_gap():
    row = accuracy_table(three_seed_metrics()).iloc[0]
    assert row["plain"] == pytest.approx(0.82) and row["plain_std"] == pytest.approx(0.02)
    assert row["residual"] == pytest.approx(0.86) and row["residual_std"] == pytest.approx(math.sqrt(0.0003))
    assert row["residual_minus_plain"] == pytest.approx(0.04) and row["residual_minus_plain_std"] == pytest.approx(0.01)
    assert row["plain_n"] == row["residual_n"] == row["residual_minus_plain_n"] == 3
    assert [row[f"plain_seed{s}"] for s in THREE_SEEDS] == [0.80, 0.82, 0.84]  # every seed kept (the CSV)
    assert {"plain_std", "plain_n", "residual_seed2"} <= set(accuracy_csv(accuracy_table(three_seed_metrics())))
    entry = table_metrics(accuracy_table(three_seed_metrics()))["relu-bn"]["depth-20"]
    assert entry == {"plain": 0.82, "plain_std": 0.02, "plain_n": 3, "residual": 0.86, "residual_std": 0.0173,
                     "residual_n": 3, "residual_minus_plain": 0.04, "residual_minus_plain_std": 0.01,
                     "residual_minus_plain_n": 3}


def test_three_seeds_in_the_markdown_table():
    md = to_markdown(accuracy_table(three_seed_metrics()))
    assert ("| relu-bn | 20 | 82.00 ± 2.00 | 86.00 ± 1.73 | +4.00 ± 1.00 | 3 | 80.00, 82.00, 84.00 | "
            "84.00, 87.00, 87.00 |  |") in md
    assert "nan" not in md.lower()


def test_a_negative_gap_over_three_seeds():
    # plain 0.80/0.82/0.84 (mean 0.82, std 0.02), residual 0.70/0.71/0.75 (mean 0.72, std sqrt(0.0007));
    # paired gaps -0.10/-0.11/-0.09: mean -0.10, std 0.01 (unpaired, the stds would add up to about 0.033)
    accs = {0: (0.80, 0.70), 1: (0.82, 0.71), 2: (0.84, 0.75)}
    row = accuracy_table([metric(f"{arch}-32-relu-bn-{seed}", acc) for seed, pair in accs.items()
                          for arch, acc in zip(("plain", "residual"), pair, strict=True)]).iloc[0]
    assert row["residual"] == pytest.approx(0.72) and row["residual_std"] == pytest.approx(math.sqrt(0.0007))
    assert row["residual_minus_plain"] == pytest.approx(-0.10)
    assert row["residual_minus_plain_std"] == pytest.approx(0.01)
    assert "-10.00 ± 1.00" in to_markdown(pd.DataFrame([row]))


def test_one_seed_reads_as_before_seeds():
    table = accuracy_table([metric("plain-20-relu-bn-0", 0.80), metric("residual-20-relu-bn-0", 0.85)])
    assert table.loc[0, "plain_n"] == 1 and pd.isna(table.loc[0, "plain_std"])
    assert table_metrics(table)["relu-bn"]["depth-20"] == {"plain": 0.8, "residual": 0.85, "residual_minus_plain": 0.05}
    md = to_markdown(table)
    header = "| variant | depth | plain acc. (%) | residual acc. (%) | residual − plain (pp) | note |"
    assert md.splitlines()[0] == header
    assert "±" not in md and "nan" not in md.lower()
    assert list(accuracy_csv(table).columns) == ["variant", "depth", "family", "plain", "residual",
                                                 "residual_minus_plain", "note"]


def test_a_diverged_seed_leaves_the_means_and_the_gap_of_its_pair():
    metrics = three_seed_metrics()
    metrics[4] = metric("plain-20-relu-bn-2", 0.1, diverged_epoch=5)  # plain, seed 2
    row = accuracy_table(metrics).iloc[0]
    assert row["plain"] == pytest.approx(0.81) and row["plain_n"] == 2 and pd.isna(row["plain_seed2"])
    assert row["residual_n"] == 3 and row["residual_minus_plain_n"] == 2
    assert row["residual_minus_plain"] == pytest.approx(0.045)  # seeds 0 and 1 only: 0.04, 0.05
    assert row["note"] == "plain diverged in epoch 5 (seed 2)"


def test_gradient_table_averages_a_trained_model_over_its_seeds():
    summaries = {f"trained-plain-20-relu-bn-{seed}": {"first_grad_mean_abs": first, "last_grad_mean_abs": 1e-2,
                                                      "grad_mean_abs_ratio": first / 1e-2}
                 for seed, first in enumerate((1e-3, 2e-3, 3e-3))}
    row = gradient_table(summaries).iloc[0]
    assert row["seeds"] == 3 and row["first_mean_abs"] == pytest.approx(2e-3)
    assert row["first_mean_abs_std"] == pytest.approx(1e-3) and row["ratio_mean_abs"] == pytest.approx(0.2)
    assert "| relu-bn | trained | 20 | plain | 0.002 ± 0.001 | 0.01 ± 0 | 0.2 ± 0.1 | — | 3 |  |" in gradient_markdown(
        gradient_table(summaries))
    assert {"first_mean_abs_std", "seeds"} <= set(gradient_csv(gradient_table(summaries)))
    one_seed = gradient_csv(gradient_table({"trained-plain-20-relu-bn-0": summaries["trained-plain-20-relu-bn-0"]}))
    assert list(one_seed.columns) == ["arch", "depth", "variant", "init", "first_mean_abs", "last_mean_abs",
                                      "ratio_mean_abs", "ratio_rms", "ratio_l2", "note"]  # a single run's columns


def test_gradient_table_orders_rows_and_keeps_notes():
    summaries = {
        "trained-plain-20-relu-bn-0": {"first_grad_mean_abs": 1e-3, "last_grad_mean_abs": 2e-3,
                                       "grad_mean_abs_ratio": 0.5},
        "plain-20-tanh-nobn-default": {"first_grad_mean_abs": 1e-9, "last_grad_mean_abs": 1e-3,
                                       "grad_mean_abs_ratio": 1e-6, "grad_rms_ratio": 2e-6},
        "residual-20-tanh-nobn-default": {"diverged": True},
        "trained-plain-56-tanh-nobn-0": {"diverged": True, "skipped": "the classifier diverged in training"},
    }
    table = gradient_table(summaries)
    assert table[["variant", "init", "arch"]].values.tolist() == [
        ["relu-bn", "trained", "plain"], ["tanh-nobn", "default", "plain"], ["tanh-nobn", "default", "residual"],
        ["tanh-nobn", "trained", "plain"]]
    assert table.loc[2, "note"] == "diverged (NaN/inf gradients)"
    assert table.loc[3, "note"] == "the classifier diverged in training"
    md = gradient_markdown(table)
    assert "| tanh-nobn | default | 20 | plain | 1e-09 | 0.001 | 1e-06 | 2e-06 |  |" in md
    assert "| tanh-nobn | default | 20 | residual | — | — | — | — | diverged (NaN/inf gradients) |" in md


def test_gradient_metrics_keep_the_compared_numbers_only():
    """metrics/gradient_stats/<name>.json: a handful of numbers per model, enough for the gradient table."""

    from cnnlab.gradients import STAT_COLUMNS, summarize

    rows = [{"iteration": i, "layer_index": j, "layer_name": name, "kind": "conv", "n_params": 10,
             **{stat: value for stat in STAT_COLUMNS}, "loss": 2.3}
            for i in range(2) for j, (name, value) in enumerate((("conv1", 1e-6), ("fc", 1e-2)))]
    summary = summarize(pd.DataFrame(rows))
    metrics = gradient_headline(summary)
    assert tuple(metrics) == GRADIENT_HEADLINE and len(summary) > 3 * len(metrics)
    assert metrics["grad_mean_abs_ratio"] == pytest.approx(1e-4)
    name = "plain-8-relu-bn-default"
    full, slim = gradient_table({name: summary}), gradient_table({name: metrics})
    pd.testing.assert_frame_equal(full.drop(columns="note"), slim.drop(columns="note"))


# --- long tables: the data of the overlaid DVC plots (colour = model, column = panel) ---------------


def test_accuracy_by_depth_is_the_table_in_long_form():
    table = accuracy_table([metric("plain-20-relu-bn-0", 0.80), metric("residual-20-relu-bn-0", 0.85),
                            metric("plain-56-relu-bn-0", 0.70), metric("residual-56-relu-bn-0", 0.88)])
    long = accuracy_by_depth(table)
    assert list(long.columns) == ["model", "panel", "depth", "test_accuracy"]
    assert sorted(map(tuple, long[["model", "depth", "test_accuracy"]].values.tolist())) == [
        ("plain", 20, 0.80), ("plain", 56, 0.70), ("residual", 20, 0.85), ("residual", 56, 0.88)]
    assert set(long["panel"]) == {"relu-bn"}


def test_stack_tables_puts_the_labels_first_and_keeps_every_row():
    tables = {"a": pd.DataFrame({"x": [1, 2], "y": [0.1, 0.2]}), "b": pd.DataFrame({"x": [1], "y": [9.0]})}
    labels = {"a": {"model": "plain-8", "panel": "p"}, "b": {"model": "residual-8", "panel": "p"}}
    stacked = stack_tables(tables, labels)
    assert list(stacked.columns) == ["model", "panel", "x", "y"]
    assert stacked.values.tolist() == [["plain-8", "p", 1, 0.1], ["plain-8", "p", 2, 0.2], ["residual-8", "p", 1, 9.0]]


def test_gradient_labels_split_model_from_panel():
    assert classifier_labels("residual-56-tanh-nobn-0") == {
        "model": "residual-56", "panel": "tanh-nobn", "arch": "residual", "depth": 56, "variant": "tanh-nobn"}
    assert classifier_labels("plain-8-relu-bn-2", with_seed=True) == {
        "model": "plain-8 seed 2", "panel": "relu-bn", "arch": "plain", "depth": 8, "variant": "relu-bn", "seed": 2}
    assert gradient_labels("plain-20-tanh-nobn-scaled") == {"model": "plain-20", "panel": "tanh-nobn, scaled init"}
    assert gradient_labels("trained-residual-32-relu-bn-0") == {
        "model": "residual-32", "panel": "relu-bn, trained model"}
    assert gradient_labels("trained-residual-32-relu-bn-4", with_seed=True)["model"] == "residual-32 seed 4"


def test_read_curves_joins_the_dvclive_files_by_epoch(tmp_path):
    metrics = tmp_path / "plots" / "metrics"
    metrics.mkdir(parents=True)
    for i, name in enumerate(CLASSIFICATION_CURVES.values()):
        (metrics / f"{name}.tsv").write_text(f"step\t{name}\n1\t{i}\n2\t{i + 0.5}\n")
    curves = read_curves(tmp_path)
    assert list(curves.columns) == ["epoch", *CLASSIFICATION_CURVES.values()]
    assert curves["epoch"].tolist() == [1, 2] and curves["lr"].tolist() == [4, 4.5]
    (metrics / "lr.tsv").unlink()
    with pytest.raises(UserError, match="lr.tsv is missing"):
        read_curves(tmp_path)


def test_resnet18_rows_are_their_own_family_in_the_table_the_metrics_and_the_plot_data():
    """Depth 18 is ResNet-18 without / with skips: after the 6n+2 depths, its own metrics key and plot panel; the
    deepest entry stays the deepest 6n+2 net."""
    table = accuracy_table([metric("plain-20-relu-bn-0", 0.80), metric("residual-20-relu-bn-0", 0.85),
                            metric("plain-18-relu-bn-0", 0.86), metric("residual-18-relu-bn-0", 0.84),
                            metric("plain-8-relu-bn-0", 0.70), metric("residual-8-relu-bn-0", 0.72)])
    assert table[["depth", "family"]].values.tolist() == [[8, "6n+2"], [20, "6n+2"], [18, "ResNet-18"]]
    metrics = table_metrics(table)["relu-bn"]
    assert metrics["resnet18"] == {"plain": 0.86, "residual": 0.84, "residual_minus_plain": -0.02}
    assert "depth-18" not in metrics and metrics["deepest"]["depth"] == 20
    assert "| relu-bn | 18 (ResNet-18) | 86.00 | 84.00 | -2.00 |" in to_markdown(table)
    panels = accuracy_by_depth(table).drop_duplicates("panel").set_index("depth")["panel"].to_dict()
    assert panels == {8: "relu-bn", 18: "relu-bn, ResNet-18"}
