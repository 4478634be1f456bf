"""DVC stage ``download@<dataset>``: fetch MNIST or CIFAR-10 and write it in the canonical format.

    python stages/download.py {mnist|cifar10}

Reads params ``seed`` and ``data`` (source, mirror, <dataset>.train_size/test_size); writes
``data/<dataset>/`` (train.pt, test.pt, manifest.json).
"""

import argparse

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab.data.canonical import save_dataset
from cnnlab.data.sources import load_source
from cnnlab.errors import run_cli
from cnnlab.params import load_params
from cnnlab.params.datasets import DATASETS, data_params
from cnnlab.pipeline import DOWNLOAD_CACHE, dataset_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=None, help="output folder (default data/<dataset>)")
    args = parser.parse_args()
    p = data_params(load_params(args.params), args.dataset)
    dataset = load_source(p, DOWNLOAD_CACHE)
    out = args.out or dataset_dir(args.dataset)
    manifest = save_dataset(dataset, out)
    print(
        f"{args.dataset}: {manifest['counts']['train']} train / {manifest['counts']['test']} test images "
        f"from {manifest['source']} -> {out}"
    )


if __name__ == "__main__":
    run_cli(main)
