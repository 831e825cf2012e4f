"""Datasets for the book: MNIST, Fashion-MNIST, CIFAR-10, digits (photos: ``cnnbook.photos``).

Where the loaders look, in order (``data_roots()``):

1. ``CNNBOOK_DATA_DIR`` if it is set (it may be read-only, e.g. a shared mirror);
2. the download cache ``cache_dir()``: ``<repo>/data`` in a checkout of the book,
   else ``~/.cache/cnnbook``.

Each folder is searched in torchvision's own layouts (``<root>/MNIST/raw/...``). A dataset
found in neither is downloaded by torchvision into the cache when the machine is online;
offline, :class:`DatasetNotFoundError` says which files to put where. Files are verified
before use (SHA-256 for MNIST and Fashion-MNIST, torchvision's MD5 check for CIFAR-10) and
a bad file stops the loader with an error naming it: there is no silent fallback.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision

from cnnbook._checks import check_bool, check_int
from cnnbook.cifar_pack import PackCorruptError, PackedCIFAR10, pack_path
from cnnbook.image_arrays import (
    cached_sha256,
    cifar_jpg_arrays,
    cifar_jpg_split,
    gather,
    raw_arrays,
)
from cnnbook.runtime import is_offline

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# SHA-256 of the uncompressed raw files, i.e. the canonical contents that torchvision
# extracts from the published .gz archives.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Sizes in bytes (header + payload) of the same files: a truncated file is caught and
# reported as such without hashing it.
_IDX_SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
# Images per class in each split of CIFAR-10; a folder with fewer is partial.
_CIFAR_PER_CLASS = {"train": 5000, "test": 1000}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the searched folders (or only partly) and was not downloaded."""


class DatasetCorruptError(OSError):
    """A dataset file is present but its contents are wrong (truncated, altered or replaced)."""


# --------------------------------------------------------------------------- where data lives


def cache_dir() -> Path:
    """The download cache: ``<repo>/data`` in a checkout of the book, else ``~/.cache/cnnbook``.

    The folder may not exist yet; the loaders create it when they first write into it.
    """
    repo = Path(__file__).resolve().parents[2]  # utils/cnnbook/data.py -> repo
    if (repo / "pyproject.toml").is_file() and (repo / "data").is_dir():
        return repo / "data"
    return Path.home() / ".cache" / "cnnbook"


def data_roots() -> list[Path]:
    """Folders searched for datasets, in order: ``CNNBOOK_DATA_DIR`` (if set), ``cache_dir()``."""
    roots = []
    env = os.environ.get("CNNBOOK_DATA_DIR", "").strip()
    if env:
        roots.append(Path(env).expanduser().resolve())
    cache = cache_dir()
    if all(cache.resolve() != root for root in roots):
        roots.append(cache)
    return roots


def _describe_roots(roots: list[Path]) -> str:
    env = os.environ.get("CNNBOOK_DATA_DIR", "").strip()
    env_root = Path(env).expanduser().resolve() if env else None
    lines = []
    for i, root in enumerate(roots, start=1):
        notes = ["CNNBOOK_DATA_DIR" if root == env_root else "download cache"]
        if not root.is_dir():
            notes.append("does not exist")
        lines.append(f"  {i}. {root}  ({', '.join(notes)})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- checks


def _check_loader_args(train: object, transform: object, download: object) -> None:
    check_bool("train", train)
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
    if download is not None and not isinstance(download, bool):
        raise TypeError(f"download must be True, False or None, got {download!r}")


def _may_download(download: bool | None) -> bool:
    # Only probe the network when the data is missing: the probe can take seconds.
    return (not is_offline()) if download is None else download


def _no_download_reason(download: bool | None) -> str:
    if download is False:
        return "download=False was passed"
    return (
        "this machine is offline (cnnbook.runtime.is_offline(); "
        "CNNBOOK_OFFLINE=0 forces a download attempt)"
    )


def _download(title: str, make: Callable[[Path], object], help_text: str) -> object:
    """Run ``make(cache_dir())``, a torchvision constructor with download=True."""
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return make(cache)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise DatasetNotFoundError(
            f"{title}: downloading into {cache} failed:\n  {err}\n{help_text}"
        ) from err


# --------------------------------------------------------------------------- MNIST-style


def _idx_problems(raw: Path, sha256: dict[str, str]) -> list[str]:
    """One line per file in ``raw`` with a wrong size or checksum; empty if all are good."""
    problems = []
    for name, expected in sha256.items():
        path = raw / name
        size = path.stat().st_size
        if size != _IDX_SIZES[name]:
            problems.append(f"{path}: {size} bytes, expected {_IDX_SIZES[name]} (truncated?)")
        elif cached_sha256(path) != expected:
            problems.append(f"{path}: SHA-256 {cached_sha256(path)[:16]}..., expected {expected}")
    return problems


def _idx_help(cls: type, sha256: dict[str, str]) -> str:
    folder = cls.__name__
    target = cache_dir() / folder / "raw"
    mirror = getattr(cls, "mirrors", [""])[0]
    files = "\n".join(f"    {name}" for name in sha256)
    return (
        f"To fix it, put these {len(sha256)} files, uncompressed, into {target}/\n{files}\n"
        f"(or into {folder}/raw/ under CNNBOOK_DATA_DIR, if you use one).\n"
        f"Get them by gunzipping the .gz files at {mirror}\n"
        "or run once online: the loader then downloads them itself."
    )


def _make_idx(cls: type, root: Path, train: bool, transform: Callable | None) -> object:
    processed = root / cls.__name__ / "processed"
    if (processed / "training.pt").is_file() and (processed / "test.pt").is_file():
        # torchvision prefers these legacy files to the raw ones we just verified.
        warnings.warn(
            f"{processed} holds torchvision's legacy training.pt/test.pt, which torchvision "
            "loads instead of the verified raw files; delete that folder to silence this",
            stacklevel=4,
        )
    return cls(str(root), train=train, transform=transform, download=False)


def _load_idx(
    title: str,
    cls: type,
    sha256: dict[str, str],
    train: bool,
    transform: Callable | None,
    download: bool | None,
) -> object:
    """Find, verify and open an MNIST-style dataset (see ``mnist``)."""
    _check_loader_args(train, transform, download)
    roots = data_roots()
    cache = cache_dir().resolve()
    repair = False  # True: our own cache holds an interrupted download
    for root in roots:
        raw = root / cls.__name__ / "raw"
        missing = [name for name in sha256 if not (raw / name).is_file()]
        if len(missing) == len(sha256):
            continue  # nothing here: look in the next folder
        if missing:
            repair = root.resolve() == cache and _may_download(download)
            if repair:
                break  # torchvision downloads what is missing
            raise DatasetNotFoundError(
                f"{title}: {raw} holds only part of the dataset, so it is not used; "
                f"missing: {', '.join(missing)}.\n{_idx_help(cls, sha256)}"
            )
        problems = _idx_problems(raw, sha256)
        if problems:
            raise DatasetCorruptError(
                f"{title}: corrupt or partial file(s), not used:\n  "
                + "\n  ".join(problems)
                + "\nDelete or replace each of them with a good copy (expected checksums: "
                "cnnbook.data) and run again; the cache is re-downloaded when online."
            )
        return _make_idx(cls, root, train, transform)
    if not repair and not _may_download(download):
        raise DatasetNotFoundError(
            f"{title} was not found, and it was not downloaded: "
            f"{_no_download_reason(download)}.\nFolders searched, in order:\n"
            f"{_describe_roots(roots)}\n{_idx_help(cls, sha256)}"
        )
    dataset = _download(
        title,
        lambda root: cls(str(root), train=train, transform=transform, download=True),
        _idx_help(cls, sha256),
    )
    problems = _idx_problems(cache_dir() / cls.__name__ / "raw", sha256)
    if problems:
        raise DatasetCorruptError(f"{title}: the download is corrupt:\n  " + "\n  ".join(problems))
    return dataset


def mnist(
    train: bool = True, transform: Callable | None = None, download: bool | None = None
) -> torchvision.datasets.MNIST:
    """MNIST handwritten digits (28x28 grey, 10 classes) as torchvision's dataset.

    train: the 60,000 training images if True, else the 10,000 test images.
    transform: applied to each PIL image, e.g. ``torchvision.transforms.ToTensor()``.
    download: None (default) downloads only if the files are in no searched folder and
        the machine is online; True always may download, False never does.
    Items are ``(PIL image, int label)``; ``.data`` is (N, 28, 28) uint8 and
    ``.targets`` (N,) int64. Raises DatasetNotFoundError or DatasetCorruptError.
    """
    return _load_idx("MNIST", torchvision.datasets.MNIST, MNIST_SHA256, train, transform, download)


def fashion_mnist(
    train: bool = True, transform: Callable | None = None, download: bool | None = None
) -> torchvision.datasets.FashionMNIST:
    """Fashion-MNIST clothing images (28x28 grey, 10 classes); arguments as in ``mnist``."""
    return _load_idx(
        "Fashion-MNIST",
        torchvision.datasets.FashionMNIST,
        FASHION_MNIST_SHA256,
        train,
        transform,
        download,
    )


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_help() -> str:
    target = cache_dir()
    cls = torchvision.datasets.CIFAR10
    batches = ", ".join([name for name, _ in cls.train_list + cls.test_list] + ["batches.meta"])
    return (
        f"Either of two layouts works, in any folder above (e.g. {target}):\n"
        f"  a) torchvision's format: {target}/{cls.base_folder}/ with {batches}\n"
        f"     (extract {cls.url} into {target}/);\n"
        f"  b) an ImageFolder of images: {target}/cifar10-jpg/train/<class>/*.jpg "
        f"({_CIFAR_PER_CLASS['train']} per class) and\n"
        f"     {target}/cifar10-jpg/test/<class>/*.jpg ({_CIFAR_PER_CLASS['test']} per class), "
        f"class folders {', '.join(CIFAR10_CLASSES)}."
    )


def _cifar_pickles(root: Path, train: bool, transform: Callable | None) -> object:
    cls = torchvision.datasets.CIFAR10
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except RuntimeError as err:  # torchvision's integrity (MD5) check failed
        folder = root / cls.base_folder
        files = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
        bad = [
            str(folder / name)
            for name, md5 in files
            if not torchvision.datasets.utils.check_integrity(str(folder / name), md5)
        ]
        raise DatasetCorruptError(
            f"CIFAR-10: missing or corrupt file(s) in {folder}, not used:\n  "
            + "\n  ".join(bad)
            + f"\nDelete or replace them (or delete the whole {cls.base_folder} folder, which "
            "is re-downloaded when online) and run again."
        ) from err


def _cifar_jpg_problems(split_dir: Path) -> list[str]:
    """Structural problems of an ImageFolder split: missing or unexpected class folders."""
    if not split_dir.is_dir():
        return [f"the folder {split_dir} is missing"]
    found = {entry.name for entry in os.scandir(split_dir) if entry.is_dir()}
    problems = [
        f"class folder '{name}' is missing" for name in CIFAR10_CLASSES if name not in found
    ]
    # ImageFolder makes a class of every sub-folder, so an extra one shifts the labels.
    problems += [
        f"unexpected folder '{name}' (it would become an extra class)"
        for name in sorted(found - set(CIFAR10_CLASSES))
    ]
    return problems


def _cifar_jpg(root: Path, split: str, transform: Callable | None) -> object:
    split_dir = root / "cifar10-jpg" / split
    per_class = _CIFAR_PER_CLASS[split]
    problems = _cifar_jpg_problems(split_dir)
    dataset = None
    if not problems:
        dataset = torchvision.datasets.ImageFolder(
            str(split_dir), transform=transform, allow_empty=True
        )
        counts = np.bincount(dataset.targets, minlength=len(CIFAR10_CLASSES))
        problems = [
            f"'{name}' has {count} images, expected {per_class}"
            for name, count in zip(CIFAR10_CLASSES, counts, strict=True)
            if count != per_class
        ]
    if problems:
        raise DatasetNotFoundError(
            f"CIFAR-10 ({split} split): the folder {split_dir} is partial, so it is not used:\n  - "
            + "\n  - ".join(problems)
            + f"\nA complete split has the 10 class folders {', '.join(CIFAR10_CLASSES)} with "
            f"{per_class} images each. Replace it with a complete copy, or remove "
            f"{root / 'cifar10-jpg'} so that torchvision's CIFAR-10 is used instead "
            "(downloaded when online)."
        )
    return dataset


def _cifar_packed(path: Path, split: str, transform: Callable | None) -> PackedCIFAR10:
    try:
        dataset = PackedCIFAR10(path, split, transform)
    except PackCorruptError as err:
        raise DatasetCorruptError(f"CIFAR-10: {err}") from err
    counts = np.bincount(dataset.targets, minlength=len(CIFAR10_CLASSES))
    expected = [_CIFAR_PER_CLASS[split]] * len(CIFAR10_CLASSES)
    if tuple(dataset.classes) != CIFAR10_CLASSES or counts.tolist() != expected:
        raise DatasetNotFoundError(
            f"CIFAR-10 ({split} split): the pack {path} is partial or not CIFAR-10, so it is "
            f"not used: classes {dataset.classes}, images per class {counts.tolist()}, "
            f"expected {list(CIFAR10_CLASSES)} with {expected[0]} each. Pack a complete "
            "cifar10-jpg folder again (tools/pack_cifar.py)."
        )
    return dataset


def cifar10(
    train: bool = True, transform: Callable | None = None, download: bool | None = None
) -> torchvision.datasets.CIFAR10 | torchvision.datasets.ImageFolder | PackedCIFAR10:
    """CIFAR-10 (32x32 colour, 10 classes: ``CIFAR10_CLASSES``), 50,000 train / 10,000 test.

    Looks in every searched folder first for torchvision's own format
    (``cifar-10-batches-py``, bit-exact CIFAR-10, MD5-checked by torchvision), then for an
    ImageFolder of images ``cifar10-jpg/{train,test}/<class>/*.jpg`` (returned as
    ``torchvision.datasets.ImageFolder``; a partial folder is an error), then for the same
    JPEGs packed into one file, ``cifar10-pack.npz`` (``cnnbook.cifar_pack``; the file
    ``CNNBOOK_CIFAR_PACK`` names, if set, is used before anything else), then downloads
    torchvision's format into the cache (``download`` as in ``mnist``).
    Either way items are ``(PIL image 32x32 RGB, int label)`` and ``.classes`` is
    ``list(CIFAR10_CLASSES)``.
    """
    _check_loader_args(train, transform, download)
    split = "train" if train else "test"
    roots = data_roots()
    if os.environ.get("CNNBOOK_CIFAR_PACK", "").strip():
        return _cifar_packed(pack_path(roots), split, transform)
    base = torchvision.datasets.CIFAR10.base_folder
    for root in roots:
        if (root / base).is_dir():
            return _cifar_pickles(root, train, transform)
    for root in roots:
        if (root / "cifar10-jpg").is_dir():
            return _cifar_jpg(root, split, transform)
    packed = pack_path(roots)
    if packed is not None:
        return _cifar_packed(packed, split, transform)
    if not _may_download(download):
        raise DatasetNotFoundError(
            f"CIFAR-10 was not found, and it was not downloaded: "
            f"{_no_download_reason(download)}.\nFolders searched, in order:\n"
            f"{_describe_roots(roots)}\n{_cifar_help()}"
        )
    return _download(
        "CIFAR-10",
        lambda root: torchvision.datasets.CIFAR10(
            str(root), train=train, transform=transform, download=True
        ),
        _cifar_help(),
    )


# --------------------------------------------------------------------------- to tensors


def as_tensors(
    dataset: object, limit: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a dataset, or a seeded random subset of it, as two tensors.

    dataset: any map-style dataset whose items are ``(image, label)``; images may be PIL
        images, (H, W[, C]) arrays or (C, H, W) tensors (uint8 is scaled by 1/255, float
        is kept as it is, so a normalising transform shows up in the result).
    limit: keep ``limit`` items chosen at random with ``seed`` (in dataset order);
        None or ``limit >= len(dataset)`` keeps all.
    Returns ``images: (N, C, H, W)`` float32 in [0, 1] and ``labels: (N,)`` int64.
    Untransformed MNIST-style and CIFAR10 datasets are read from ``.data`` in one go;
    the CIFAR-10 ImageFolder is decoded once and cached as .npz in ``cache_dir()``; a
    CIFAR-10 pack is decoded directly (only the images asked for).
    """
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"dataset must support len() and indexing, got {type(dataset).__name__}")
    if limit is not None:
        limit = check_int("limit", limit, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset is empty")
    if limit is None or limit >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))

    raw_kinds = (torchvision.datasets.MNIST, torchvision.datasets.CIFAR10)
    split = cifar_jpg_split(dataset, CIFAR10_CLASSES)
    if (
        isinstance(dataset, raw_kinds)
        and dataset.transform is None
        and (dataset.target_transform is None)
    ):
        images, labels = raw_arrays(dataset, idx)
    elif split is not None:
        images, labels = cifar_jpg_arrays(dataset, split, idx, cache_dir())
    elif isinstance(dataset, PackedCIFAR10) and dataset.transform is None:
        images, labels = dataset.decode(idx)
    else:
        images, labels = gather(dataset, idx, "as_tensors")

    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    return x, torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------- small data


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's 1,797 real handwritten digits, 8x8 pixels with 17 grey levels.

    Returns ``images: (1797, 8, 8)`` float64 in [0, 16] and ``labels: (1797,)`` int64
    in 0..9. Bundled with scikit-learn, so no download is ever needed.
    """
    # Imported here: sklearn.datasets takes about 2 s to import and only two functions use it.
    from sklearn.datasets import load_digits as sklearn_load_digits

    digits = sklearn_load_digits()
    return digits.images.astype(np.float64), digits.target.astype(np.int64)
