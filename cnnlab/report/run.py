"""Reading one pipeline run's outputs for the report: every read names the file and the stage that writes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cnnlab.errors import UserError
from cnnlab.report.document import PNG_SIGNATURE, Figure


class Run:
    """The pipeline's outputs under ``root``; every read names the file and the stage that writes it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, rel: str, stage: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise UserError(f"{rel} is missing: run `dvc repro {stage}`")
        return path

    def json(self, rel: str, stage: str) -> dict:
        try:
            return json.loads(self.path(rel, stage).read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{rel} is not valid JSON ({err}): run `dvc repro {stage}`") from None

    def figure(self, rel: str, stage: str, alt: str, caption: str) -> Figure:
        path = self.path(rel, stage)
        with path.open("rb") as fh:
            if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise UserError(f"{rel} is not a PNG image: run `dvc repro {stage}`")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(Path(rel).parts[1:]))  # plots/a/b.png -> a_b.png
        return Figure(path, name, alt, caption)
