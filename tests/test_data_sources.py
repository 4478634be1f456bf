"""The download stage's library: mirrors, torchvision, subsets, the canonical format and bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data import sources
from cnnlab.data.canonical import Dataset, Split, load_dataset, load_split, save_dataset
from cnnlab.data.idx import read_idx, write_idx
from cnnlab.data.sources import DataParams
from cnnlab.errors import UserError
from tests.helpers import make_cifar_mirror, make_mnist_mirror


@pytest.fixture
def small_counts(monkeypatch):
    monkeypatch.setattr(
        sources, "EXPECTED_COUNTS", {"mnist": {"train": 60, "test": 20}, "cifar10": {"train": 30, "test": 10}}
    )


def params(dataset, source="mirror", mirror=None, train_size=None, test_size=None, seed=0):
    return DataParams(dataset, source, mirror, train_size, test_size, seed)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_mirror_reads_idx_files(tmp_path, small_counts, compress):
    make_mnist_mirror(tmp_path, compress=compress)
    ds = sources.load_source(params("mnist", mirror=tmp_path), tmp_path / "dl")
    assert ds.train.images.shape == (60, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.tolist() == [i % 10 for i in range(20)]
    assert ds.classes == [str(d) for d in range(10)] and ds.source == "mirror"


def test_idx_roundtrip_and_truncation(tmp_path):
    data = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", data)
    assert np.array_equal(read_idx(tmp_path / "x"), data)
    (tmp_path / "t").write_bytes((tmp_path / "x").read_bytes()[:-10])
    with pytest.raises(UserError, match="truncated or padded.*download it again"):
        read_idx(tmp_path / "t")
    (tmp_path / "t.gz").write_bytes(gzip.compress((tmp_path / "x").read_bytes())[:-20])
    with pytest.raises(UserError, match="damaged gzip"):
        read_idx(tmp_path / "t.gz")
    (tmp_path / "bad").write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    with pytest.raises(UserError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("as_tar,ext", [(False, ".png"), (True, ".jpg")])
def test_cifar_mirror_folder_and_tarball(tmp_path, small_counts, as_tar, ext):
    make_cifar_mirror(tmp_path, as_tar=as_tar, ext=ext)
    ds = sources.load_source(params("cifar10", mirror=tmp_path), tmp_path / "dl")
    assert ds.train.images.shape == (30, 3, 32, 32)
    assert torch.bincount(ds.train.labels).tolist() == [3] * 10
    assert ds.test.labels.tolist() == list(range(10))
    if ext == ".png":  # lossless: pixels must equal the files (RGB order)
        import cv2

        bgr = cv2.imread(str(tmp_path / "cifar10" / "train" / "airplane" / "0000.png"))
        assert torch.equal(ds.train.images[0], torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1))


def test_stratified_subset_is_balanced_deterministic_and_sorted():
    labels = torch.arange(1000) % 10
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = sources.stratified_indices(labels, 105, gen())
    assert a.numel() == 105 and torch.equal(a, sources.stratified_indices(labels, 105, gen()))
    assert torch.all(a[1:] > a[:-1])
    counts = torch.bincount(labels[a], minlength=10)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(UserError, match="train_size=2000 is larger than the dataset .1000 samples"):
        sources.stratified_indices(labels, 2000, gen(), key="data.mnist.train_size")


def test_subset_params_apply(tmp_path, small_counts):
    make_mnist_mirror(tmp_path)
    ds = sources.load_source(params("mnist", mirror=tmp_path, train_size=20, test_size=10), tmp_path / "dl")
    assert len(ds.train) == 20 and len(ds.test) == 10
    assert torch.bincount(ds.train.labels).tolist() == [2] * 10


def test_synthetic_source_shapes(tmp_path):
    ds = sources.load_source(params("cifar10", "synthetic", train_size=20, test_size=10), tmp_path)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.train.boxes.shape == (20, 4)
    ds2 = sources.load_source(params("cifar10", "synthetic", train_size=20, test_size=10), tmp_path)
    assert torch.equal(ds.train.images, ds2.train.images)
    assert not torch.equal(ds.train.images[:10], ds.test.images), "train and test must differ"
    mnist = sources.load_source(params("mnist", "synthetic", train_size=20, test_size=10), tmp_path)
    assert mnist.train.images.shape == (20, 1, 28, 28)


# ----------------------------------------------------------------------------- bad input


def test_missing_mirror_folder(tmp_path):
    with pytest.raises(UserError, match=r"data.mirror: .*mnist does not exist"):
        sources.load_source(params("mnist", mirror=tmp_path / "nowhere"), tmp_path)


def test_mirror_missing_file(tmp_path, small_counts):
    make_mnist_mirror(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="lacks t10k-labels-idx1-ubyte"):
        sources.load_source(params("mnist", mirror=tmp_path), tmp_path)


def test_mirror_wrong_counts(tmp_path, small_counts):
    make_mnist_mirror(tmp_path, n_train=50)
    with pytest.raises(UserError, match="mnist train from mirror has 50 images, expected 60"):
        sources.load_source(params("mnist", mirror=tmp_path), tmp_path)


def test_mirror_images_and_labels_disagree(tmp_path, small_counts):
    make_mnist_mirror(tmp_path)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8), compress=True)
    with pytest.raises(UserError, match="do not match"):
        sources.load_source(params("mnist", mirror=tmp_path), tmp_path)


def test_cifar_mirror_wrong_shape(tmp_path, small_counts):
    import cv2

    make_cifar_mirror(tmp_path)
    cv2.imwrite(str(tmp_path / "cifar10" / "train" / "cat" / "0001.png"), np.zeros((30, 32, 3), np.uint8))
    with pytest.raises(UserError, match="shapes .*expected 32x32 RGB"):
        sources.load_source(params("cifar10", mirror=tmp_path), tmp_path)


def test_cifar_mirror_unreadable_image(tmp_path, small_counts):
    make_cifar_mirror(tmp_path)
    (tmp_path / "cifar10" / "test" / "dog" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"cannot decode image test/dog/0000.png"):
        sources.load_source(params("cifar10", mirror=tmp_path), tmp_path)


def test_cifar_mirror_damaged_tarball(tmp_path, small_counts):
    make_cifar_mirror(tmp_path, as_tar=True)
    tar = tmp_path / "cifar10" / "cifar10-jpg.tar.gz"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(UserError, match="damaged"):
        sources.load_source(params("cifar10", mirror=tmp_path), tmp_path)


def test_torchvision_offline_says_how_to_use_mirror(tmp_path, monkeypatch):
    import urllib.error

    from torchvision import datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "MNIST", offline)
    expected = r"could not download mnist through torchvision.*set data\.source in params\.yaml to mirror"
    with pytest.raises(UserError, match=expected):
        sources.load_source(params("mnist", "torchvision"), tmp_path)


def test_failed_download_names_the_cause_and_removes_what_it_created(tmp_path, monkeypatch):
    """torchvision's own download code, with every URL failing as offline urllib does (an empty message)."""
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    tried = []

    def offline(url, download_root, filename=None, md5=None):
        tried.append(url)
        Path(download_root, filename).write_bytes(b"partial")  # a half-written file, as a broken download leaves
        raise urllib.error.URLError("")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    root = tmp_path / "downloads"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"an earlier download")
    with pytest.raises(UserError) as info:
        sources.load_source(params("mnist", "torchvision"), root)
    message = str(info.value)
    assert "\n" not in message and tried
    assert message.startswith("could not download mnist through torchvision (RuntimeError: Error downloading ")
    assert f"Tried {tried[0].rsplit('/', 1)[0]}/, got: <urlopen error >" in message  # the URL and its error
    assert message.endswith("offline? set data.source in params.yaml to mirror (with data.mirror=PATH, a folder "
                            "with mnist/ and cifar10/) or to synthetic")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "cifar-10-batches-py", "cifar-10-batches-py/data_batch_1"]  # no MNIST/raw/ left, the old download kept


def test_failed_download_into_a_new_folder_leaves_nothing(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    def offline(url, download_root, filename=None, md5=None):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match=r"Temporary failure in name resolution.*data\.source in params\.yaml"):
        sources.load_source(params("mnist", "torchvision"), tmp_path / "data" / "downloads")
    assert list(tmp_path.iterdir()) == []


def test_torchvision_source_converts_to_canonical(tmp_path, monkeypatch, small_counts):
    """The torchvision path (official download, checksum-verified by torchvision) yields the canonical format."""
    from torchvision import datasets

    class FakeCifar:
        def __init__(self, root, train, download):
            assert download is True and Path(root) == tmp_path
            n = 30 if train else 10
            self.data = np.full((n, 32, 32, 3), 7, np.uint8)
            self.data[:, 0, 0] = [1, 2, 3]
            self.targets = [i % 10 for i in range(n)]

    monkeypatch.setattr(datasets, "CIFAR10", FakeCifar)
    ds = sources.load_source(params("cifar10", "torchvision"), tmp_path)
    assert ds.train.images.shape == (30, 3, 32, 32) and ds.train.images[0, :, 0, 0].tolist() == [1, 2, 3]


# ----------------------------------------------------------------------------- canonical format


def test_canonical_roundtrip_manifest_and_checksum(tmp_path):
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    split = Split(images, torch.arange(20) % 2, torch.zeros(20, 4))
    dataset = Dataset("toy", ["a", "b"], split, split.subset(torch.arange(5)), "synthetic")
    manifest = save_dataset(dataset, tmp_path / "toy")
    assert manifest["counts"] == {"train": 20, "test": 5} and manifest["class_counts"]["train"] == [10, 10]
    expected_mean = (images.double() / 255).mean(dim=(0, 2, 3))
    assert np.allclose(manifest["train_mean"], expected_mean.numpy(), atol=1e-6)
    back = load_dataset(tmp_path / "toy", verify=True)
    assert torch.equal(back.train.images, images) and back.train.boxes is not None
    (tmp_path / "toy" / "test.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="does not match its manifest checksum"):
        load_split(tmp_path / "toy", "test", verify=True)
    with pytest.raises(UserError, match="cannot be read"):
        load_split(tmp_path / "toy", "test")
    with pytest.raises(UserError, match="missing .*run `dvc repro download`"):
        load_split(tmp_path / "absent", "train")


def test_save_dataset_failure_keeps_previous_output(tmp_path, monkeypatch):
    split = Split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4))
    save_dataset(Dataset("toy", ["a"] * 4, split, split, "synthetic"), tmp_path / "toy")
    before = (tmp_path / "toy" / "train.pt").read_bytes()

    import cnnlab.data.canonical as canonical

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(canonical, "write_json", boom)
    with pytest.raises(RuntimeError):
        save_dataset(Dataset("toy", ["a"] * 4, split.subset(torch.arange(2)), split, "synthetic"), tmp_path / "toy")
    assert (tmp_path / "toy" / "train.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"], "no temporary folder may survive"


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    from cnnlab.io import atomic_dir, write_text

    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("y")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask
