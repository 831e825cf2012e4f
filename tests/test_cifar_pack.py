"""cnnbook.cifar_pack: the packed CIFAR-10 decodes to exactly the ImageFolder's tensors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from cnnbook import cifar_pack, data
from cnnbook.cifar_pack import PACK_NAME, PackCorruptError, PackedCIFAR10, pack_cifar10
from cnnbook.data import CIFAR10_CLASSES, DatasetCorruptError

MIRROR_JPG = Path(os.environ.get("CNNBOOK_DATA_DIR") or "/work/shared/data") / "cifar10-jpg"
PER_CLASS = {"train": 4, "test": 2}


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """No data folders but tmp_path/cache; offline; a 4 + 2 per class CIFAR-10 is complete."""
    for var in ("CNNBOOK_DATA_DIR", "CNNBOOK_CIFAR_PACK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    cache = tmp_path / "cache"
    monkeypatch.setattr(data, "cache_dir", lambda: cache)
    monkeypatch.setattr(data, "_CIFAR_PER_CLASS", PER_CLASS)
    return cache


@pytest.fixture
def real_subset(tmp_path) -> Path:
    """A cifar10-jpg folder of real mirror JPEGs: the last 4 train, 2 test files per class."""
    if not MIRROR_JPG.is_dir():
        pytest.skip("the offline data mirror's cifar10-jpg is missing")
    root = tmp_path / "subset" / "cifar10-jpg"
    for split, n in PER_CLASS.items():
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True)
            files = sorted(os.listdir(MIRROR_JPG / split / name))[-n:]
            for f in files:
                (root / split / name / f).symlink_to(MIRROR_JPG / split / name / f)
    return root


def test_pack_decodes_to_the_image_folders_tensors(real_subset, tmp_path, isolated):
    pack = pack_cifar10(real_subset, tmp_path / PACK_NAME)
    for split in ("train", "test"):
        folder = torchvision.datasets.ImageFolder(str(real_subset / split))
        packed = PackedCIFAR10(pack, split)
        assert packed.classes == folder.classes == list(CIFAR10_CLASSES)
        assert packed.targets == folder.targets  # same labels in the same order
        for i, (path, _) in enumerate(folder.samples):
            assert packed.jpeg_bytes(i) == Path(path).read_bytes()  # the very same file
        x_pack, y_pack = data.as_tensors(packed)
        x_folder, y_folder = data.as_tensors(folder)  # the book's ImageFolder path
        assert x_pack.shape == (10 * PER_CLASS[split], 3, 32, 32)
        assert torch.equal(x_pack, x_folder) and torch.equal(y_pack, y_folder)
        image, label = packed[3]
        assert np.array_equal(np.asarray(image), np.asarray(folder[3][0])) and label == folder[3][1]
    # the shared JPEG header is stored once: the pack is smaller than the files
    total = sum(p.stat().st_size for p in real_subset.rglob("*.jpg"))
    assert pack.stat().st_size < total


def _fake_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in PER_CLASS.items():
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                torchvision.transforms.functional.to_pil_image(pixels).save(
                    root / split / name / f"{j:04d}.jpg"
                )
    return root


def test_cifar10_finds_the_pack_in_a_data_folder_and_by_env(isolated, tmp_path, monkeypatch):
    source = _fake_folder(tmp_path / "src" / "cifar10-jpg")
    env_dir = tmp_path / "env"
    pack_cifar10(source, env_dir / PACK_NAME)
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(env_dir))
    train, test = data.cifar10(train=True), data.cifar10(train=False)
    assert isinstance(train, PackedCIFAR10) and (len(train), len(test)) == (40, 20)
    elsewhere = pack_cifar10(source, tmp_path / "other.npz")
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("CNNBOOK_CIFAR_PACK", str(elsewhere))
    assert data.cifar10(train=False).path == elsewhere
    monkeypatch.setenv("CNNBOOK_CIFAR_PACK", str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="CNNBOOK_CIFAR_PACK"):
        data.cifar10()


def test_a_changed_byte_is_caught_by_the_checksum(isolated, tmp_path, monkeypatch):
    pack = pack_cifar10(_fake_folder(tmp_path / "src"), tmp_path / "env" / PACK_NAME)
    with np.load(pack) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["train_suffixes"] = arrays["train_suffixes"].copy()
    arrays["train_suffixes"][100] ^= 1
    np.savez(pack, **arrays)
    with pytest.raises(PackCorruptError, match="corrupt"):
        PackedCIFAR10(pack, "train")
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(pack.parent))
    with pytest.raises(DatasetCorruptError, match="corrupt"):
        data.cifar10()


def test_a_partial_pack_is_not_used(isolated, tmp_path, monkeypatch):
    pack_cifar10(_fake_folder(tmp_path / "src"), tmp_path / "env" / PACK_NAME)
    monkeypatch.setattr(data, "_CIFAR_PER_CLASS", {"train": 5000, "test": 1000})
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(data.DatasetNotFoundError, match="partial"):
        data.cifar10()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="source"):
        pack_cifar10(tmp_path, tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        cifar_pack.open_pack(tmp_path / "missing.npz")
    (tmp_path / "not.npz").write_bytes(b"hello")
    with pytest.raises(PackCorruptError):
        cifar_pack.open_pack(tmp_path / "not.npz")
    pack = pack_cifar10(_fake_folder(tmp_path / "src"), tmp_path / "p.npz")
    with pytest.raises(ValueError, match="split"):
        PackedCIFAR10(pack, "val")
