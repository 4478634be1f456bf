"""Comparison tables across models: plain vs residual accuracy, gradient statistics."""

import math

import pandas as pd

from cnnlab.compare import (
    accuracy_table,
    gradient_markdown,
    gradient_table,
    split_gradient_name,
    table_metrics,
    to_markdown,
)
from cnnlab.params import split_key


def metric(key, acc, diverged_epoch=None):
    return {"model": key, "test_acc": acc, "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch}


def test_split_names():
    assert split_key("residual-56-tanh-nobn") == ("residual", 56, "tanh-nobn")
    assert split_gradient_name("plain-20-tanh-nobn-scaled") == {
        "arch": "plain", "depth": 20, "variant": "tanh-nobn", "init": "scaled"}
    assert split_gradient_name("trained-residual-32-relu-bn")["init"] == "trained"


def test_accuracy_table_pairs_plain_and_residual_per_depth():
    table = accuracy_table([metric("plain-20-relu-bn", 0.80), metric("residual-20-relu-bn", 0.85),
                            metric("plain-56-relu-bn", 0.70), metric("residual-56-relu-bn", 0.88)])
    assert table[["depth", "plain", "residual"]].values.tolist() == [[20, 0.80, 0.85], [56, 0.70, 0.88]]
    assert math.isclose(table.loc[1, "residual_minus_plain"], 0.18)
    assert table_metrics(table) == {"relu-bn": {
        "depth-20": {"plain": 0.8, "residual": 0.85, "residual_minus_plain": 0.05},
        "depth-56": {"plain": 0.7, "residual": 0.88, "residual_minus_plain": 0.18},
        "deepest": {"depth": 56, "plain": 0.7, "residual": 0.88, "residual_minus_plain": 0.18}}}
    md = to_markdown(table)
    assert "| relu-bn | 56 | 70.00 | 88.00 | +18.00 |" in md


def test_diverged_model_is_never_reported_as_a_number():
    table = accuracy_table([metric("plain-56-tanh-nobn", 0.1, diverged_epoch=3), metric("residual-56-tanh-nobn", 0.6)])
    assert pd.isna(table.loc[0, "plain"]) and pd.isna(table.loc[0, "residual_minus_plain"])
    assert table.loc[0, "note"] == "plain diverged in epoch 3"
    assert table_metrics(table)["tanh-nobn"]["depth-56"]["plain"] is None
    assert "| tanh-nobn | 56 | — | 60.00 | — | plain diverged in epoch 3 |" in to_markdown(table)


def test_gradient_table_orders_rows_and_keeps_notes():
    summaries = {
        "trained-plain-20-relu-bn": {"first_grad_mean_abs": 1e-3, "last_grad_mean_abs": 2e-3, "grad_mean_abs_ratio": 0.5},
        "plain-20-tanh-nobn-default": {"first_grad_mean_abs": 1e-9, "last_grad_mean_abs": 1e-3,
                                       "grad_mean_abs_ratio": 1e-6, "grad_rms_ratio": 2e-6},
        "residual-20-tanh-nobn-default": {"diverged": True},
        "trained-plain-56-tanh-nobn": {"diverged": True, "skipped": "the classifier diverged in training"},
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
