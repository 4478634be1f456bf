"""The DVC pipeline end to end, in a temporary copy of the repository, on tiny synthetic data
(the ``tiny_pipeline`` fixture of conftest.py, shared with test_browser.py).

Checks what users rely on: `dvc exp run -S ...` runs every stage and each trained stage learns, a second
`dvc repro` is a no-op, a change of any params section invalidates exactly the stages that read it and
reruns only them and what depends on their outputs, and a bad param fails with one line and exit 2.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from helpers import run_in

pytestmark = pytest.mark.slow  # the whole tiny pipeline, several `dvc repro` runs: minutes


@pytest.fixture(scope="module")
def repo(tiny_pipeline):
    return tiny_pipeline


def run(args, cwd, check=True):
    return run_in(cwd, args, check=check)


def test_all_stages_ran_and_wrote_outputs(repo):
    dest, out = repo
    stages = run(["dvc", "stage", "list", "--name-only"], dest).stdout.split()
    assert len(stages) >= 8, stages
    for stage in stages:
        assert f"Running stage '{stage}'" in out, f"{stage} did not run:\n{out}"
    for path in [
        "metrics/compare_classifiers.json",
        "metrics/gradient_stats/plain-8-tanh-nobn-default.json",
        "metrics/gradient_stats/trained-residual-8-relu-bn-0.json",
        "metrics/gradient_stats/trained-residual-8-relu-bn-1.json",
        "tables/classifier_accuracy.md",
        "metrics/gradcam/8-relu-bn-0.json",
        "metrics/gradcam/8-relu-bn-1.json",
        "metrics/gradcam/18-relu-bn-0.json",
        "metrics/gradient_stats/trained-plain-18-relu-bn-1.json",
        "models/classifier/plain-18-relu-bn-0.pt",
        "metrics/train_encoder/cnn.json",
        "metrics/train_encoder/resnet18.json",
        "metrics/train_fcn/upsample.json",
        "metrics/train_fcn/fcn8s.json",
        "metrics/train_fcn/resnet18-fcn8s.json",
        "metrics/train_fcn/resnet18-binary.json",
        "plots/train_fcn/resnet18-binary/confusion.png",
        "plots/train_fcn/fcn8s/canvases.png",
        "plots/gradcam/8-relu-bn-1/heatmaps.png",
        "data/mnist/manifest.json",
        "data/cifar10/manifest.json",
        "data/segmented_mnist/canvases.pt",
        "plots/segment_mnist/digits.png",
        "plots/segment_mnist/canvases.png",
        "plots/gradient_report/over_training/8-relu-bn-1.png",
        "plots/gradient_report/over_training.csv",
    ]:
        assert (dest / path).exists(), path
    # the gradients recorded during training: epoch 0 (the first step) and every epoch, one row per layer and stat
    header, *rows = (dest / "plots/train_classifier/plain-8-relu-bn-0/gradients.csv").read_text().splitlines()
    assert header == "epoch,layer_index,layer,kind,n_params,statistic,value"
    assert sorted({int(row.split(",")[0]) for row in rows}) == list(range(11))  # 10 epochs
    # ResNet-18 without skips: its projection shortcuts get no gradient, hence no rows (not zeros)
    noskip = (dest / "plots/train_classifier/plain-18-relu-bn-0/gradients.csv").read_text()
    skip = (dest / "plots/train_classifier/residual-18-relu-bn-0/gradients.csv").read_text()
    assert ".downsample.0," not in noskip and ".downsample.0," in skip
    assert (dest / "plots/gradient_report/over_training/18-relu-bn-0.png").exists()


def test_second_repro_is_a_noop(repo):
    dest, _ = repo
    out = run(["dvc", "repro"], dest).stdout
    assert "Data and pipelines are up to date" in out, out


def test_trained_stages_learn(repo):
    """On the tiny synthetic data every trained stage beats chance (10 classes: 0.1) by a wide margin,
    which a label shuffle, a mean/std mix-up or a train/test split mix-up would not."""
    dest, _ = repo
    for key in ("plain-8-relu-bn-0", "residual-8-relu-bn-0", "plain-8-relu-bn-1", "residual-8-relu-bn-1",
                "plain-18-relu-bn-0", "residual-18-relu-bn-1"):
        metrics = json.loads((dest / f"metrics/train_classifier/{key}.json").read_text())
        assert metrics["test_acc"] >= 0.25, (key, metrics)  # 200 test images: chance is 0.10 +- 0.02
    for encoder in ("cnn", "resnet18"):
        assert json.loads((dest / f"metrics/train_encoder/{encoder}.json").read_text())["test_acc"] >= 0.8, encoder
    for variant in FCN_VARIANTS:
        digits = json.loads((dest / f"metrics/train_fcn/{variant}.json").read_text())["digits"]
        if variant != "resnet18-binary":  # the binary model names no digit
            assert digits["digit_accuracy"] >= 0.6, (variant, digits)
        assert digits["foreground_iou"] >= 0.3, (variant, digits)
        assert digits["mean_iou"] >= 0.3, (variant, digits)
    gradcam = json.loads((dest / "metrics/gradcam/8-relu-bn-0.json").read_text())
    for arch in ("plain", "residual"):
        assert gradcam[arch]["accuracy"] >= 0.25, (arch, gradcam)
        # the heatmap's peak lies inside the object's box far more often than a random point would
        assert gradcam[arch]["pointing_game"] >= gradcam["box_area_fraction"] + 0.15, (arch, gradcam)


def test_two_seeds_give_two_runs_and_mean_std_in_the_comparison(repo):
    """TINY trains every classifier with seeds 0 and 1: different runs, summarised as mean ± std over 2 seeds."""
    dest, _ = repo
    runs = [json.loads((dest / f"metrics/train_classifier/residual-8-relu-bn-{s}.json").read_text()) for s in (0, 1)]
    assert runs[0]["model"] == "residual-8-relu-bn-0" and runs[1]["model"] == "residual-8-relu-bn-1"
    table = (dest / "tables/classifier_accuracy.md").read_text()
    assert "| seeds | plain per seed (%) | residual per seed (%) |" in table, table
    row = next(line for line in table.splitlines() if line.startswith("| relu-bn | 8 |"))
    assert row.count(" ± ") == 3 and "| 2 |" in row and "nan" not in row.lower(), row
    entry = json.loads((dest / "metrics/compare_classifiers.json").read_text())["relu-bn"]["depth-8"]
    accs = [r["test_acc"] for r in runs]
    assert entry["residual"] == pytest.approx(sum(accs) / 2, abs=1e-4) and entry["residual_n"] == 2
    assert entry["residual_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5, abs=1e-4)
    report = (dest / "reports/report.md").read_text()
    assert "Mean ± sample std over 2 training seeds per model" in report


def test_fcn_train_size_takes_a_subset(repo):
    """``train_fcn.train_size: 800`` trains each FCN on 800 of the 1000 segmented digits."""
    _, out = repo
    for variant in FCN_VARIANTS:
        assert re.search(rf"fcn-{variant}: .*\b800 train digits\b", out), out


FCN_VARIANTS = ("upsample", "fcn8s", "resnet18-fcn8s", "resnet18-binary")
FCNS = {f"train_fcn@{v}" for v in FCN_VARIANTS}
CNN_FCNS = {"train_fcn@upsample", "train_fcn@fcn8s"}
ENCODERS = {"train_encoder@cnn", "train_encoder@resnet18"}
#: the stages of every classifier of TINY's matrix (depth 8 and ResNet-18, relu-bn, seeds 0 and 1)
CLASSIFIERS = [f"{arch}-{depth}-relu-bn-{seed}" for arch in ("plain", "residual") for depth in (8, 18)
               for seed in (0, 1)]
TRAINED = {f"train_classifier@{k}" for k in CLASSIFIERS}
TRAINED_GRADIENTS = {f"gradient_stats_trained@{k}" for k in CLASSIFIERS}
GRADCAM = {f"gradcam@{depth}-relu-bn-{seed}" for depth in (8, 18) for seed in (0, 1)}

#: one key of every params section -> exactly the stages that read it (dvc.yaml must declare it there
#: and nowhere else). Downstream stages rerun because their input files change, which DVC sees by hash.
#: The classifiers do not read the top-level seed: their training seed is the matrix's (classifier.seeds).
READERS = {
    "seed": {"download@mnist", "download@cifar10", "segment_mnist", *ENCODERS, *FCNS,
             "gradient_stats@plain-8-relu-bn-default", "gradient_stats@plain-8-tanh-nobn-default",
             "gradient_stats@residual-8-relu-bn-default", "gradient_stats@residual-8-tanh-nobn-default",
             *TRAINED_GRADIENTS, *GRADCAM, "report"},
    "data.source": {"download@mnist", "download@cifar10", "report"},
    "data.mnist.test_size": {"download@mnist", "report"},
    "data.cifar10.train_size": {"download@cifar10", "report"},
    "segment_mnist.threshold": {"segment_mnist"},
    "segment_mnist.canvas.max_offset": {"segment_mnist", "report"},
    "train_encoder.training.lr": ENCODERS | {"report"},
    "train_encoder.cnn.model.dropout": {"train_encoder@cnn", *CNN_FCNS, "report"},
    "train_encoder.resnet18.model.width": {"train_encoder@resnet18", "train_fcn@resnet18-fcn8s",
                                           "train_fcn@resnet18-binary", "report"},
    "fcn.variants.resnet18-binary.target": {"train_fcn@resnet18-binary", "report"},
    "train_fcn.confusion_pixels": FCNS | {"report"},
    "train_fcn.fcn8s.decoder_channels": {"train_fcn@fcn8s", "report"},
    "train_classifier.lr": TRAINED,
    "train_classifier.width": TRAINED | TRAINED_GRADIENTS | GRADCAM,
    "train_classifier.resnet18_width": TRAINED | TRAINED_GRADIENTS | GRADCAM,
    "gradient_stats.lr": {"gradient_stats@plain-8-relu-bn-default", "gradient_stats@plain-8-tanh-nobn-default",
                          "gradient_stats@residual-8-relu-bn-default", "gradient_stats@residual-8-tanh-nobn-default",
                          *TRAINED_GRADIENTS},
    "gradcam.deletion_steps": GRADCAM,
    "gradcam.layer": GRADCAM | {"report"},
}


def _set_param(path, dotted, value):
    import yaml

    params = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[last] = value(node[last])
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _changed_params(text):
    """From ``dvc status --json``: the stages whose declared params changed."""
    return {stage for stage, entries in json.loads(text).items()
            for entry in entries if "params.yaml" in entry.get("changed deps", {})}


def test_each_params_section_invalidates_exactly_its_readers(repo):
    dest, _ = repo
    params = dest / "params.yaml"
    original = params.read_bytes()
    assert _changed_params(run(["dvc", "status", "--json"], dest).stdout) == set()
    changes = {"data.source": lambda v: "mirror", "gradcam.layer": lambda v: "layer2",
               "fcn.variants.resnet18-binary.target": lambda v: "digits"}
    try:
        for key, expected in READERS.items():
            _set_param(params, key, changes.get(key, lambda v: v + 1 if isinstance(v, int) else v / 2))
            stale = _changed_params(run(["dvc", "status", "--json"], dest).stdout)
            assert stale == expected, f"{key}: missing {sorted(expected - stale)}, extra {sorted(stale - expected)}"
            params.write_bytes(original)
    finally:
        params.write_bytes(original)


def test_param_change_reruns_exactly_the_dependent_stages(repo):
    """The run log of a real `dvc repro` after one param change: the stage that reads it and the stages
    downstream of its outputs run; every other stage is skipped."""
    dest, _ = repo
    params = dest / "params.yaml"
    original = params.read_bytes()
    try:
        _set_param(params, "gradcam.deletion_steps", lambda v: v + 1)
        out = run(["dvc", "repro"], dest).stdout
        assert set(re.findall(r"Running stage '([^']+)'", out)) == GRADCAM | {"report"}, out
    finally:
        params.write_bytes(original)
        run(["dvc", "repro"], dest)


def test_bad_param_fails_with_one_line(repo):
    dest, _ = repo
    shutil.copy(dest / "params.yaml", dest / "params.bak")
    try:
        text = (dest / "params.yaml").read_text().replace("threshold: 0.5", "threshold: 1.5")
        (dest / "params.yaml").write_text(text)
        proc = run(["dvc", "repro", "segment_mnist"], dest, check=False)
        assert proc.returncode != 0
        assert "error: params.yaml: segment_mnist.threshold=1.5 must lie in (0.0, 1.0)" in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr + proc.stdout
    finally:
        shutil.move(dest / "params.bak", dest / "params.yaml")


def test_plots_diff_overlays_two_experiments_with_different_depths(repo):
    """`dvc plots diff <exp1> <exp2>` draws both sweeps' curves in one plot (colour = model, dash = revision)."""
    dest, out = repo
    first = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)
    run(["dvc", "exp", "run", "-n", "deeper", "-S", "classifier.depths=[14]"], dest)
    plots = json.loads(run(["dvc", "plots", "diff", first, "deeper", "--json"], dest).stdout)["data"]
    for plot_id in ("cifar10_test_accuracy", "cifar10_accuracy_vs_depth"):
        (entry,) = plots[plot_id]
        rows = entry["content"]["data"]["values"]
        assert {r["rev"] for r in rows} == {first, "deeper"}, plot_id
        models = {(r["rev"], r["model"]) for r in rows}
        if plot_id == "cifar10_test_accuracy":
            # with several seeds one line per run
            both = {(first, f"{arch}-8 seed {seed}") for arch in ("plain", "residual") for seed in (0, 1)}
            both |= {("deeper", f"{arch}-14 seed 0") for arch in ("plain", "residual")}
            assert both <= models
