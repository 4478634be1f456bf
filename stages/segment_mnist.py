"""DVC stage ``segment_mnist``: per-pixel labels for MNIST and a multi-digit canvas test set.

Reads ``data/mnist`` and params ``seed``, ``segment_mnist``; writes ``data/segmented_mnist/``
(train.pt / test.pt with ``masks``, canvases.pt, manifest.json) and the preview figures
``plots/segment_mnist/digits.png`` and ``canvases.png``.
"""

import argparse

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import torch

from cnnlab.data.canonical import Dataset, load_dataset, save_dataset
from cnnlab.data.segmentation import SEGMENT_CLASSES, digit_masks, make_canvases
from cnnlab.errors import run_cli
from cnnlab.figures.segmentation import segmentation_grid
from cnnlab.figures.style import save_figure
from cnnlab.params import load_params
from cnnlab.params.sections import segment_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/mnist")
    parser.add_argument("--out", default="data/segmented_mnist")
    parser.add_argument("--plots", default="plots/segment_mnist", help="folder for digits.png and canvases.png")
    args = parser.parse_args()
    p = segment_params(load_params(args.params))
    mnist = load_dataset(args.data, verify=True)

    for split in (mnist.train, mnist.test):
        split.extra["masks"] = digit_masks(split.images, split.labels, p.threshold)
    gen = torch.Generator().manual_seed(p.seed)
    canvases = make_canvases(
        mnist.test.images, mnist.test.labels, p.canvas_count, p.canvas_rows, p.canvas_cols,
        p.threshold, p.empty_prob, p.max_offset, gen,
    )
    info = {
        "threshold": p.threshold,
        "segment_classes": SEGMENT_CLASSES,
        "canvas": {"count": p.canvas_count, "rows": p.canvas_rows, "cols": p.canvas_cols,
                   "empty_prob": p.empty_prob, "max_offset": p.max_offset},
        "foreground_fraction": round(float((mnist.train.extra["masks"] > 0).float().mean()), 6),
    }
    segmented = Dataset("segmented_mnist", mnist.classes, mnist.train, mnist.test, mnist.source, info)
    save_dataset(segmented, args.out, extra_files={"canvases.pt": canvases.to_dict()})

    k = min(p.preview, len(mnist.test))
    k_canvas = min(max(1, k // 3), p.canvas_count)
    fig = segmentation_grid(
        [
            ("digit", list(mnist.test.images[:k, 0].numpy()), "gray"),
            ("mask", list(mnist.test.extra["masks"][:k].numpy()), "mask"),
        ],
        SEGMENT_CLASSES,
        f"Segmented MNIST: pixels above {p.threshold:.2f} x 255 take the digit's class",
    )
    save_figure(fig, f"{args.plots}/digits.png")
    fig = segmentation_grid(
        [
            ("canvas", list(canvases.images[:k_canvas, 0].numpy()), "gray"),
            ("mask", list(canvases.masks[:k_canvas].numpy()), "mask"),
        ],
        SEGMENT_CLASSES,
        f"Multi-digit canvases ({p.canvas_rows}x{p.canvas_cols} cells, offsets up to {p.max_offset} px)",
    )
    save_figure(fig, f"{args.plots}/canvases.png")
    print(f"segmented {len(mnist.train)} train / {len(mnist.test)} test digits and {p.canvas_count} canvases "
          f"-> {args.out}")


if __name__ == "__main__":
    run_cli(main)
