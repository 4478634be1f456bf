"""The canonical dataset format every stage after ``download`` reads.

A dataset folder ``data/<name>/`` holds

- ``train.pt`` and ``test.pt``: a dict of tensors, loaded with ``weights_only=True``:
  ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]`` and, for synthetic CIFAR-like data,
  ``boxes`` float32 ``[N, 4]`` (x0, y0, x1, y1 in pixels, exclusive end) of each image's object;
- ``manifest.json``: source, class names, counts per split and class, image shape, per-channel
  mean/std of the train split (in [0, 1]), and the SHA256 of each ``.pt`` file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.errors import UserError
from cnnlab.io import atomic_dir, load_torch, read_json, save_torch, sha256_file, write_json

SPLITS = ("train", "test")


@dataclass
class Split:
    """One split held in memory: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels shape {tuple(self.labels.shape)} != ({self.images.shape[0]},)")
        self.labels = self.labels.to(torch.int64)
        if self.boxes is not None and self.boxes.shape != (self.images.shape[0], 4):
            raise ValueError(f"boxes shape {tuple(self.boxes.shape)} != ({self.images.shape[0]}, 4)")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        return Split(
            self.images[index].contiguous(),
            self.labels[index].contiguous(),
            None if self.boxes is None else self.boxes[index].contiguous(),
            {k: v[index].contiguous() for k, v in self.extra.items()},
        )

    def to_dict(self) -> dict:
        out = {"images": self.images, "labels": self.labels, **self.extra}
        if self.boxes is not None:
            out["boxes"] = self.boxes
        return out


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split
    test: Split
    source: str
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        return {"train": self.train, "test": self.test}[name]


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units, computed in float64 chunks."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def save_dataset(ds: Dataset, folder: str | Path, extra_files: dict[str, dict] | None = None) -> dict:
    """Write ``ds`` atomically as a canonical folder; return its manifest.

    ``extra_files`` maps further file names to dicts of tensors saved beside the splits (e.g. canvases).
    """
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        checksums = {}
        files = {f"{name}.pt": ds.split(name).to_dict() for name in SPLITS} | dict(extra_files or {})
        for file_name, content in files.items():
            save_torch(tmp / file_name, content)
            checksums[file_name] = sha256_file(tmp / file_name)
        mean, std = channel_stats(ds.train.images)
        manifest = {
            "name": ds.name,
            "source": ds.source,
            "classes": list(ds.classes),
            "image_shape": list(ds.train.images.shape[1:]),
            "counts": {name: len(ds.split(name)) for name in SPLITS},
            "class_counts": {
                name: torch.bincount(ds.split(name).labels, minlength=len(ds.classes)).tolist() for name in SPLITS
            },
            "has_boxes": ds.train.boxes is not None,
            "train_mean": mean,
            "train_std": std,
            "sha256": checksums,
            **ds.info,
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


MISSING_HINT = "run `dvc repro download` (or the stage that writes it)"


def load_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    if not (folder / "manifest.json").exists():
        raise UserError(f"dataset {folder} is missing (no manifest.json): {MISSING_HINT}")
    return read_json(folder / "manifest.json")


def load_split(folder: str | Path, split: str, verify: bool = False) -> Split:
    """Load one split of a canonical dataset folder (e.g. ``data/cifar10``, ``"train"``)."""
    folder = Path(folder)
    manifest = load_manifest(folder)
    if verify:
        expected = manifest.get("sha256", {}).get(f"{split}.pt")
        if expected and sha256_file(folder / f"{split}.pt") != expected:
            raise UserError(f"{folder / f'{split}.pt'} does not match its manifest checksum: {MISSING_HINT}")
    raw = load_torch(folder / f"{split}.pt", what="dataset split", hint=MISSING_HINT)
    extra = {k: v for k, v in raw.items() if k not in ("images", "labels", "boxes")}
    return Split(raw["images"], raw["labels"], raw.get("boxes"), extra)


def load_dataset(folder: str | Path, verify: bool = False) -> Dataset:
    folder = Path(folder)
    manifest = load_manifest(folder)
    return Dataset(
        name=manifest["name"],
        classes=manifest["classes"],
        train=load_split(folder, "train", verify),
        test=load_split(folder, "test", verify),
        source=manifest["source"],
        info={k: v for k, v in manifest.items() if k not in ("name", "classes", "source")},
    )
