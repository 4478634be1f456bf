"""Where the raw data comes from: torchvision's official download, a local mirror, or synthetic data.

Every source returns a :class:`~cnnlab.data.canonical.Dataset` in the canonical format, so the rest of
the pipeline never knows (or cares) where the pixels came from; the manifest records it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from cnnlab.classes import CIFAR10_CLASSES, MNIST_CLASSES
from cnnlab.data import synthetic
from cnnlab.data.canonical import Dataset, Split
from cnnlab.data.idx import read_idx
from cnnlab.errors import UserError

#: Official split sizes; a mirror must hold exactly these (use train_size/test_size for subsets).
EXPECTED_COUNTS = {"mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}
IMAGE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class DataParams:
    """Where one dataset comes from and which stratified subsets to keep (built from params by
    :func:`cnnlab.params.datasets.data_params`)."""

    dataset: str  # "mnist" or "cifar10"
    source: str  # "torchvision", "mirror" or "synthetic"
    mirror: Path | None
    train_size: int | None  # None = the whole split
    test_size: int | None
    seed: int


MIRROR_HINT = ("set data.source in params.yaml to mirror (with data.mirror=PATH, a folder with mnist/ and cifar10/) "
               "or to synthetic")


def load_source(p: DataParams, download_root: Path) -> Dataset:
    """Load ``p.dataset`` from ``p.source`` and cut the stratified subsets the params ask for."""
    if p.source == "synthetic":
        return _synthetic(p)
    if p.source == "mirror":
        ds = _mirror_mnist(p.mirror) if p.dataset == "mnist" else _mirror_cifar10(p.mirror)
    else:
        ds = _torchvision(p.dataset, download_root)
    _check_counts(ds, p)
    gen = torch.Generator().manual_seed(p.seed)
    for split_name, size in (("train", p.train_size), ("test", p.test_size)):
        if size is not None:
            split = ds.split(split_name)
            keep = stratified_indices(split.labels, size, gen, key=f"data.{p.dataset}.{split_name}_size")
            setattr(ds, split_name, split.subset(keep))
    return ds


def stratified_indices(labels: torch.Tensor, size: int, gen: torch.Generator, key: str = "size") -> torch.Tensor:
    """Indices of a class-stratified random subset of ``size`` samples, in their original order."""
    n = labels.numel()
    if size > n:
        raise UserError(f"params.yaml: {key}={size} is larger than the dataset ({n} samples): use at most {n} or null")
    counts = torch.bincount(labels)
    quota = torch.floor(counts.double() * size / n).long()
    # hand out the remainder to the classes with the largest fractional parts (ties: lower class first)
    frac = counts.double() * size / n - quota.double()
    for c in torch.argsort(-frac, stable=True)[: size - int(quota.sum())]:
        quota[c] += 1
    chosen = []
    for c in range(counts.numel()):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=gen)[: int(quota[c])]])
    return torch.sort(torch.cat(chosen)).values


def _check_counts(ds: Dataset, p: DataParams) -> None:
    for split_name in ("train", "test"):
        split = ds.split(split_name)
        expected_shape = IMAGE_SHAPES[p.dataset]
        if tuple(split.images.shape[1:]) != expected_shape:
            raise UserError(
                f"{p.dataset} {split_name} images from {p.source} have shape {tuple(split.images.shape[1:])}, expected "
                f"{expected_shape}: the {p.source} copy is not {p.dataset}"
            )
        expected = EXPECTED_COUNTS[p.dataset][split_name]
        if len(split) != expected:
            raise UserError(
                f"{p.dataset} {split_name} from {p.source} has {len(split)} images, expected {expected}: the copy is "
                f"incomplete or not the official split (use data.{p.dataset}.{split_name}_size for subsets)"
            )
        if int(split.labels.min()) < 0 or int(split.labels.max()) >= len(ds.classes):
            raise UserError(f"{p.dataset} {split_name} labels from {p.source} fall outside 0..{len(ds.classes) - 1}")


# --------------------------------------------------------------------------- synthetic


def _synthetic(p: DataParams) -> Dataset:
    sizes = {
        name: (size if size is not None else EXPECTED_COUNTS[p.dataset][name])
        for name, size in (("train", p.train_size), ("test", p.test_size))
    }
    # train and test come from disjoint seeds so that no test image is a copy of a train image
    seeds = {"train": 2 * p.seed, "test": 2 * p.seed + 1}
    if p.dataset == "mnist":
        splits = {k: Split(*synthetic.synthetic_digits(sizes[k], seeds[k])) for k in sizes}
        classes = MNIST_CLASSES
    else:
        splits = {}
        for k in sizes:
            images, labels, boxes = synthetic.synthetic_objects(sizes[k], seeds[k])
            splits[k] = Split(images, labels, boxes)
        classes = synthetic.SHAPES_CLASSES
    return Dataset(p.dataset, list(classes), splits["train"], splits["test"], "synthetic")


# --------------------------------------------------------------------------- mirror


def _mirror_folder(mirror: Path, dataset: str) -> Path:
    folder = mirror / dataset
    if not folder.is_dir():
        raise UserError(
            f"data.mirror: {folder} does not exist; data.mirror must be a folder holding {dataset}/ "
            f"(e.g. ../shared/data on the dev machine), or use data.source=torchvision or synthetic"
        )
    return folder


def _mirror_mnist(mirror: Path) -> Dataset:
    folder = _mirror_folder(mirror, "mnist")
    splits = {}
    for split_name, (images_name, labels_name) in MNIST_FILES.items():
        arrays = []
        for name in (images_name, labels_name):
            candidates = [folder / name, folder / f"{name}.gz"]
            path = next((c for c in candidates if c.exists()), None)
            if path is None:
                raise UserError(f"MNIST mirror {folder} lacks {name} (or {name}.gz): copy the four IDX files there")
            arrays.append(read_idx(path))
        images, labels = arrays
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise UserError(
                f"MNIST mirror {folder}: {split_name} images {images.shape} and labels {labels.shape} do not match"
            )
        splits[split_name] = Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return Dataset("mnist", MNIST_CLASSES, splits["train"], splits["test"], "mirror", {"mirror": str(folder)})


def _decode(item: tuple[str, bytes]) -> np.ndarray:
    name, blob = item
    image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"CIFAR-10 mirror: cannot decode image {name}: the file is damaged or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _cifar_members(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of every image file in an image folder or inside a .tar.gz of one."""
    tars = sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.tgz"))
    if (folder / "train").is_dir():
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield str(path.relative_to(folder)), path.read_bytes()
    elif tars:
        try:
            with tarfile.open(tars[0], "r:gz") as tar:
                for member in tar:
                    if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                        yield member.name, tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise UserError(f"CIFAR-10 mirror {tars[0]} is damaged ({err}): copy it again") from None
    else:
        raise UserError(
            f"CIFAR-10 mirror {folder} holds neither train/<class>/ image folders nor a .tar.gz of them"
        )


def _mirror_cifar10(mirror: Path) -> Dataset:
    folder = _mirror_folder(mirror, "cifar10")
    index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    entries: dict[str, list[tuple[str, int, bytes]]] = {"train": [], "test": []}
    for name, blob in _cifar_members(folder):
        parts = Path(name).parts
        # .../<split>/<class>/<file>: take the last three components, whatever the prefix
        if len(parts) < 3 or parts[-3] not in entries:
            continue
        if parts[-2] not in index:
            raise UserError(f"CIFAR-10 mirror: unknown class folder {parts[-2]!r} in {name}; "
                            f"expected {CIFAR10_CLASSES}")
        entries[parts[-3]].append((name, index[parts[-2]], blob))
    splits = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for split_name, items in entries.items():
            if not items:
                raise UserError(f"CIFAR-10 mirror {folder} has no {split_name}/<class>/ images")
            items.sort(key=lambda e: (e[1], e[0]))  # class order, then file order (official order within class)
            images = list(pool.map(_decode, ((n, b) for n, _, b in items), chunksize=256))
            shapes = {im.shape for im in images}
            if shapes != {(32, 32, 3)}:
                raise UserError(f"CIFAR-10 mirror {split_name} images have shapes {sorted(shapes)}, expected 32x32 RGB")
            stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
            labels = torch.tensor([label for _, label, _ in items], dtype=torch.int64)
            splits[split_name] = Split(stacked, labels)
    return Dataset("cifar10", CIFAR10_CLASSES, splits["train"], splits["test"], "mirror", {"mirror": str(folder)})


# --------------------------------------------------------------------------- torchvision


def _torchvision(dataset: str, root: Path) -> Dataset:
    """The official files through torchvision (checksum-verified by torchvision), cached in ``root``.

    A failed download is a one-line :class:`UserError` with the whole cause (every URL tried and its
    error, down the exception chain) and removes the files and folders it created under ``root``;
    downloads that were there before stay.
    """
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "cifar10": datasets.CIFAR10}[dataset]
    splits = {}
    for split_name in ("train", "test"):
        missing = [folder for folder in (root, *root.parents) if not folder.exists()]  # deepest first
        existed = set(root.rglob("*")) if root.exists() else set()
        try:
            ds = cls(str(root), train=split_name == "train", download=True)
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
            created = sorted((set(root.rglob("*")) if root.exists() else set()) - existed, reverse=True)
            for path in [*created, *(folder for folder in missing if folder.is_dir())]:  # files before their folders
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            causes, seen = [], err
            while seen is not None and len(causes) < 5:  # torchvision's message, then what caused it
                text = " ".join(line.strip() for line in str(seen).splitlines() if line.strip())
                causes.append(f"{type(seen).__name__}: {text}" if text else type(seen).__name__)
                seen = seen.__cause__ or seen.__context__
            raise UserError(
                f"could not download {dataset} through torchvision ({' <- '.join(causes)}); offline? {MIRROR_HINT}"
            ) from None
        images = torch.as_tensor(np.asarray(ds.data))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        splits[split_name] = Split(images.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64))
    classes = MNIST_CLASSES if dataset == "mnist" else CIFAR10_CLASSES
    return Dataset(dataset, classes, splits["train"], splits["test"], "torchvision")

