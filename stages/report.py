"""DVC stage ``report``: one self-contained report of the pipeline's results.

    python stages/report.py [--params params.yaml] [--out reports]

Reads the metrics and figures of exactly the models params.yaml names (see :func:`cnnlab.report.build_report`)
and writes ``<out>/report.md`` (figures in ``<out>/figures/``) and ``<out>/report.html`` (one file, figures
embedded). The folder is replaced as a whole, so a failed run leaves the previous report intact.
"""

import argparse
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab.errors import run_cli
from cnnlab.io import atomic_dir
from cnnlab.params import load_params
from cnnlab.report import build_report
from cnnlab.report.document import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    # only reads the values it describes: every stage that wrote its inputs validated the whole file
    doc = build_report(Path("."), load_params(args.params, validate=False))
    with atomic_dir(args.out) as tmp:
        write_report(doc, tmp)
    out = Path(args.out)
    print(f"report: {out / 'report.md'} (figures in {out / 'figures'}/) and {out / 'report.html'} (standalone)")


if __name__ == "__main__":
    run_cli(main)
