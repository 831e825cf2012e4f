"""cnnbook.data: search order, verification, clear errors, real loads, photos, tensors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cnnbook import data, image_arrays, photos
from cnnbook.data import CIFAR10_CLASSES, DatasetCorruptError, DatasetNotFoundError
from cnnbook.photos import SAMPLE_PHOTOS

REPO = Path(__file__).resolve().parent.parent
IDX_FILES = tuple(data.MNIST_SHA256)
GREY_PHOTOS = {"camera", "coins", "brick", "grass", "gravel", "clock"}
REAL_CACHE_DIR = data.cache_dir  # before any test patches it


def _find_mirror() -> Path | None:
    """The offline data mirror: CNNBOOK_DATA_DIR, else ../shared/data next to the repo."""
    for candidate in (os.environ.get("CNNBOOK_DATA_DIR"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MNIST" / "raw").is_dir():
            return Path(candidate).resolve()
    return None


MIRROR = _find_mirror()  # read before the autouse fixture clears the environment


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """No CNNBOOK_DATA_DIR, offline, and an empty cache in tmp_path: nothing leaks in or out."""
    monkeypatch.delenv("CNNBOOK_DATA_DIR", raising=False)
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    cache = tmp_path / "cache"
    monkeypatch.setattr(data, "cache_dir", lambda: cache)
    return cache


@pytest.fixture
def mirror(monkeypatch) -> Path:
    if MIRROR is None:
        if os.environ.get("CI"):
            pytest.fail("the offline data mirror (../shared/data or CNNBOOK_DATA_DIR) is missing")
        pytest.skip("offline data mirror not found")
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(MIRROR))
    return MIRROR


def _link_mnist(root: Path, folder: str = "MNIST") -> Path:
    """Make <root>/<folder>/raw/ with symlinks to the mirror's four files (no copying)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        (raw / name).symlink_to(MIRROR / folder / "raw" / name)
    return raw


def _fake_mnist(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """Make <root>/MNIST/raw/ with four small zero-filled (so truncated) files."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        (raw / name).write_bytes(bytes((sizes or {}).get(name, 16)))
    return raw


def _write_cifar_folder(root: Path, split: str, per_class: int, classes=CIFAR10_CLASSES) -> Path:
    split_dir = root / "cifar10-jpg" / split
    for k, name in enumerate(classes):
        (split_dir / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((32, 32, 3), 20 * k + 5 * i, dtype=np.uint8)
            Image.fromarray(pixels).save(split_dir / name / f"{i:04d}.jpg")
    return split_dir


# --------------------------------------------------------------------------- where data lives


def test_data_roots_put_env_first(monkeypatch, tmp_path, isolated):
    assert data.data_roots() == [isolated]
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "mirror"))
    assert data.data_roots() == [(tmp_path / "mirror").resolve(), isolated]
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(isolated))  # the same folder twice: once
    assert data.data_roots() == [isolated.resolve()]


def test_cache_dir_is_repo_data_in_a_checkout_else_home(monkeypatch, tmp_path):
    if Path(data.__file__).resolve().is_relative_to(REPO):  # imported from this checkout
        assert REAL_CACHE_DIR() == REPO / "data"
    monkeypatch.setattr(data, "__file__", str(tmp_path / "site-packages" / "cnnbook" / "data.py"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert REAL_CACHE_DIR() == tmp_path / "home" / ".cache" / "cnnbook"


def test_env_dir_is_searched_before_the_cache(monkeypatch, tmp_path, isolated, mirror):
    env_root = tmp_path / "env"
    _link_mnist(env_root)
    _link_mnist(isolated)
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(env_root))
    assert Path(data.mnist(train=False).root) == env_root.resolve()
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "empty"))
    assert Path(data.mnist(train=False).root) == isolated


def test_a_bad_file_in_the_env_dir_is_reported_not_skipped(monkeypatch, tmp_path, isolated):
    # The cache would not even be looked at: the first folder that has the files decides.
    _fake_mnist(tmp_path / "env")
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetCorruptError, match=str(tmp_path / "env")):
        data.mnist()


# --------------------------------------------------------------------------- errors


def test_offline_and_missing_names_dataset_folders_and_files(monkeypatch, tmp_path, isolated):
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        data.mnist()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "MNIST" in message and "offline" in message
    assert str(tmp_path / "env") in message and str(isolated) in message
    assert message.index(str(tmp_path / "env")) < message.index(str(isolated))
    assert all(name in message for name in IDX_FILES)
    assert f"{isolated / 'MNIST' / 'raw'}/" in message


def test_fashion_mnist_error_names_its_own_folder():
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST") as info:
        data.fashion_mnist(train=False)
    assert "FashionMNIST/raw" in str(info.value)


def test_download_false_never_asks_whether_online(monkeypatch):
    def boom() -> bool:
        raise AssertionError("is_offline() must not be called with download=False")

    monkeypatch.setattr(data, "is_offline", boom)
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        data.mnist(download=False)


@pytest.mark.parametrize("partial", [False, True])
def test_online_and_missing_downloads_into_the_cache(monkeypatch, isolated, partial):
    if partial:  # an interrupted download in the cache is completed, not reported
        (_fake_mnist(isolated) / "t10k-labels-idx1-ubyte").unlink()
    tried = []

    def fake_download(self) -> None:
        tried.append(Path(self.root))
        raise RuntimeError("no network in tests")

    monkeypatch.setenv("CNNBOOK_OFFLINE", "0")
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    with pytest.raises(DatasetNotFoundError, match="downloading into .* failed"):
        data.mnist()
    assert tried == [isolated]


def test_altered_real_labels_file_is_detected(isolated, mirror, monkeypatch):
    monkeypatch.delenv("CNNBOOK_DATA_DIR")
    raw = isolated / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        if "labels" in name:
            shutil.copyfile(mirror / "MNIST" / "raw" / name, raw / name)
        else:
            (raw / name).symlink_to(mirror / "MNIST" / "raw" / name)
    labels = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
    labels[100] = (labels[100] + 1) % 10  # one changed label: same size, new checksum
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(DatasetCorruptError) as info:
        data.mnist()
    message = str(info.value)
    assert str(raw / "train-labels-idx1-ubyte") in message and "SHA-256" in message
    assert "t10k-labels" not in message and "Delete or replace" in message


def test_truncated_file_is_detected_by_its_size(isolated):
    _fake_mnist(isolated, sizes={"t10k-labels-idx1-ubyte": 5000})
    with pytest.raises(DatasetCorruptError, match="t10k-labels-idx1-ubyte: 5000 bytes, expected"):
        data.mnist(train=False)


def test_part_of_the_files_is_reported_as_partial(tmp_path, monkeypatch):
    raw = _fake_mnist(tmp_path / "env")
    (raw / "train-images-idx3-ubyte").unlink()
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match="only part.*missing: train-images-idx3-ubyte"):
        data.mnist()


def test_files_are_hashed_once_per_process(monkeypatch, tmp_path):
    calls = []
    real_hash = image_arrays.sha256_file
    monkeypatch.setattr(
        image_arrays, "sha256_file", lambda path: calls.append(path) or real_hash(path)
    )
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    first = image_arrays.cached_sha256(path)
    assert image_arrays.cached_sha256(path) == first and len(calls) == 1
    path.write_bytes(b"abcd")  # new size: hashed again
    assert image_arrays.cached_sha256(path) != first and len(calls) == 2


# --------------------------------------------------------------------------- CIFAR-10


def test_partial_cifar_image_folder_is_rejected(isolated):
    _write_cifar_folder(isolated, "train", per_class=2)
    with pytest.raises(DatasetNotFoundError, match="partial") as info:
        data.cifar10(train=True)
    message = str(info.value)
    assert str(isolated / "cifar10-jpg" / "train") in message
    assert "'airplane' has 2 images, expected 5000" in message


def test_cifar_folder_with_missing_or_extra_class_is_rejected(isolated):
    split_dir = _write_cifar_folder(isolated, "test", per_class=1, classes=CIFAR10_CLASSES[:9])
    (split_dir / "zebra").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        data.cifar10(train=False)
    assert "'truck' is missing" in str(info.value) and "'zebra'" in str(info.value)


def test_cifar_missing_offline_lists_both_layouts(isolated):
    with pytest.raises(DatasetNotFoundError) as info:
        data.cifar10()
    message = str(info.value)
    assert "CIFAR-10" in message and str(isolated) in message
    assert "cifar-10-batches-py" in message and "data_batch_1" in message
    assert "cifar10-jpg/train/<class>/*.jpg" in message


def test_cifar_pickles_are_preferred_and_checked(monkeypatch, tmp_path, isolated):
    _write_cifar_folder(tmp_path / "env", "train", per_class=1)
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "env"))
    batches = isolated / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DatasetCorruptError, match="data_batch_1"):
        data.cifar10()


def test_small_cifar_folder_loads_and_caches_decoded_arrays(monkeypatch, isolated):
    monkeypatch.setattr(data, "_CIFAR_PER_CLASS", {"train": 3, "test": 2})
    _write_cifar_folder(isolated, "train", per_class=3)
    dataset = data.cifar10(train=True)
    assert isinstance(dataset, torchvision.datasets.ImageFolder)
    assert tuple(dataset.classes) == CIFAR10_CLASSES and len(dataset) == 30

    x, y = data.as_tensors(dataset)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor(dataset.targets))
    cached = list(isolated.glob("cifar10-jpg-train-*.npz"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".sha256").is_file()

    def no_decoding(path):
        raise AssertionError("the decoded cache should have been used")

    loader, dataset.loader = dataset.loader, no_decoding
    x2, y2 = data.as_tensors(dataset, limit=10, seed=2)  # a subset, read from the cache
    assert x2.shape == (10, 3, 32, 32)
    pairs = zip(x2, y2, strict=True)
    assert all(any(torch.equal(a, b) for b in x[y == label]) for a, label in pairs)

    dataset.loader = loader
    cached[0].write_bytes(cached[0].read_bytes()[:-10])  # damaged: warned, decoded again
    with pytest.warns(UserWarning, match="checksum"):
        x3, _ = data.as_tensors(dataset)
    assert torch.equal(x3, x) and image_arrays.read_decoded(cached[0], 30) is not None


# --------------------------------------------------------------------------- real data (mirror)


@pytest.mark.parametrize("loader", [data.mnist, data.fashion_mnist])
def test_real_mnist_style_loads_from_the_mirror(mirror, loader):
    for train, n in ((True, 60000), (False, 10000)):
        dataset = loader(train=train)
        assert len(dataset) == n and Path(dataset.root) == mirror
        labels = dataset.targets
        assert labels.min() == 0 and labels.max() == 9 and len(labels.unique()) == 10
        image, label = dataset[0]
        assert image.size == (28, 28) and 0 <= label <= 9


def test_real_cifar_image_folder_loads_from_the_mirror(mirror):
    train, test = data.cifar10(train=True), data.cifar10(train=False)
    assert (len(train), len(test)) == (50000, 10000)
    assert tuple(train.classes) == tuple(test.classes) == CIFAR10_CLASSES
    x, y = data.as_tensors(test, limit=40, seed=1)
    assert x.shape == (40, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9


def test_mnist_fast_path_matches_item_by_item(mirror):
    fast = data.as_tensors(data.mnist(train=False), limit=50, seed=3)
    slow = data.as_tensors(
        data.mnist(train=False, transform=torchvision.transforms.ToTensor()), limit=50, seed=3
    )
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
    assert fast[0].shape == (50, 1, 28, 28)


# --------------------------------------------------------------------------- as_tensors


class TinyImages(torch.utils.data.Dataset):
    """Twenty 6x5 RGB PIL images whose pixels encode their index."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int):
        return Image.fromarray(np.full((6, 5, 3), 10 * i, dtype=np.uint8)), i % 4


def test_as_tensors_shapes_and_values():
    x, y = data.as_tensors(TinyImages())
    assert x.shape == (20, 3, 6, 5) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [i % 4 for i in range(20)]
    assert torch.allclose(x[:, 0, 0, 0], torch.arange(20) * 10 / 255)


def test_as_tensors_subset_is_seeded():
    a = data.as_tensors(TinyImages(), limit=7, seed=5)
    b = data.as_tensors(TinyImages(), limit=7, seed=5)
    c = data.as_tensors(TinyImages(), limit=7, seed=6)
    assert a[0].shape == (7, 3, 6, 5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert data.as_tensors(TinyImages(), limit=99)[0].shape[0] == 20


def test_as_tensors_reads_cifar10_arrays_directly():
    # torchvision's CIFAR10 without its files: only .data (N, H, W, C) and .targets matter.
    dataset = torchvision.datasets.CIFAR10.__new__(torchvision.datasets.CIFAR10)
    dataset.data = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    dataset.targets = [3, 1, 4, 1, 5, 9]
    dataset.transform = dataset.target_transform = None
    x, y = data.as_tensors(dataset)
    assert x.shape == (6, 3, 32, 32) and y.tolist() == dataset.targets
    assert torch.equal(x[2], torch.from_numpy(dataset.data[2]).permute(2, 0, 1) / 255)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"dataset": 5}, TypeError, "dataset"),
        ({"limit": 0}, ValueError, "limit"),
        ({"limit": 2.5}, TypeError, "limit"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "0"}, TypeError, "seed"),
    ],
)
def test_as_tensors_rejects_bad_arguments(kwargs, error, name):
    arguments = {"dataset": TinyImages(), **kwargs}
    with pytest.raises(error, match=name):
        data.as_tensors(**arguments)


# --------------------------------------------------------------------------- small data


def test_load_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16 and set(labels.tolist()) == set(range(10))


@pytest.mark.parametrize("name", sorted(SAMPLE_PHOTOS))
def test_sample_photo(name):
    photo = photos.sample_photo(name)
    assert photo.dtype == np.uint8 and min(photo.shape[:2]) >= 100
    assert photo.shape == photo.shape[:2] + (() if name in GREY_PHOTOS else (3,))
    licences = ("CC0", "CC BY", "public domain", "no known copyright")
    assert any(licence in SAMPLE_PHOTOS[name] for licence in licences)


def test_sample_photo_rejects_unknown_names():
    with pytest.raises(ValueError, match="name must be one of .*chelsea.*flower"):
        photos.sample_photo("lena")
    with pytest.raises(TypeError, match="name"):
        photos.sample_photo(3)


def test_to_gray_uses_601_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert np.allclose(photos.to_gray(rgb), [[0.299, 0.587, 0.114, 1.0]])
    photo = photos.sample_photo("chelsea")
    pil = np.asarray(Image.fromarray(photo).convert("L")) / 255
    assert np.abs(photos.to_gray(photo) - pil).max() <= 1 / 255
    camera = photos.sample_photo("camera")
    assert np.array_equal(photos.to_gray(camera), camera / 255)
    assert photos.to_gray(photo / 255.0).dtype == np.float64


def test_crop_patch_copies_the_window():
    photo = photos.sample_photo("astronaut")
    patch = photos.crop_patch(photo, 10, 20, 32)
    assert np.array_equal(patch, photo[10:42, 20:52]) and patch.shape == (32, 32, 3)
    patch[:] = 0
    assert photo[10:42, 20:52].any()
    assert photos.crop_patch(photo[..., 0], 0, 0, (3, 4)).shape == (3, 4)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: data.mnist(train="yes"), TypeError, "train"),
        (lambda: data.fashion_mnist(transform=3), TypeError, "transform"),
        (lambda: data.cifar10(download="no"), TypeError, "download"),
        (lambda: photos.to_gray([[0.5]]), TypeError, "image"),
        (lambda: photos.to_gray(np.zeros((4, 4, 4))), ValueError, "image"),
        (lambda: photos.to_gray(np.full((2, 2), 3.0)), ValueError, "image"),
        (lambda: photos.to_gray(np.full((2, 2), 300)), ValueError, "image"),
        (lambda: photos.crop_patch(np.zeros((8, 8)), 5, 0, 4), ValueError, "top"),
        (lambda: photos.crop_patch(np.zeros((8, 8)), 0, 6, (2, 3)), ValueError, "left"),
        (lambda: photos.crop_patch(np.zeros((8, 8)), -1, 0, 2), ValueError, "top"),
        (lambda: photos.crop_patch(np.zeros((8, 8)), 0, 0, 0), ValueError, "size"),
        (lambda: photos.crop_patch(np.zeros((8, 8)), 0, 0, 2.0), TypeError, "size"),
        (lambda: photos.crop_patch(np.zeros(8), 0, 0, 2), ValueError, "image"),
    ],
)
def test_bad_inputs_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_photo_as_float_scales_and_validates():
    from cnnbook.photos import photo_as_float

    rgb = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert np.allclose(photo_as_float(rgb), [[[0.0, 128 / 255, 1.0]]])
    assert photo_as_float(np.full((2, 2), 0.5)).dtype == np.float64
    with pytest.raises(ValueError, match="image"):
        photo_as_float(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="float"):
        photo_as_float(np.full((2, 2), 1.5))
    with pytest.raises(TypeError, match="image"):
        photo_as_float([[0.1]])
