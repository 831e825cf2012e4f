"""Dataset items as arrays, for ``cnnbook.data.as_tensors``: one image as (C, H, W), a
dataset read item by item, MNIST-style ``.data`` read in one go, and the SHA-256-verified
``.npz`` cache of decoded CIFAR-10 JPEGs, so that the JPEG folder is decoded only once.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from cnnbook.integrity import sha256_file

_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process for each (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_MEMO:
        _SHA256_MEMO[key] = sha256_file(path)
    return _SHA256_MEMO[key]


def image_array(image: object, where: str) -> np.ndarray:
    """One dataset image as (C, H, W): uint8 for PIL images and uint8 arrays, else float32."""
    if isinstance(image, Image.Image):
        image = np.asarray(image)  # (H, W) or (H, W, C), like any HWC array below
    elif isinstance(image, torch.Tensor):
        # torchvision transforms return (C, H, W) tensors
        array = image.detach().cpu().numpy()
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise ValueError(f"{where} is a tensor of shape {tuple(array.shape)}, not (C, H, W)")
        return array if array.dtype == np.uint8 else array.astype(np.float32)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise TypeError(f"{where} must be a PIL image, a (C, H, W) tensor or an (H, W[, C]) array")
    array = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return array if array.dtype == np.uint8 else array.astype(np.float32)


def gather(dataset: object, idx: np.ndarray, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``dataset[i]`` for i in idx: images (k, C, H, W) and labels (k,) int64."""
    from tqdm.auto import tqdm  # here: the data loaders themselves work without tqdm

    images = None
    labels = np.empty(len(idx), dtype=np.int64)
    for j, i in enumerate(tqdm(idx, desc=desc, unit="img")):
        image, label = dataset[int(i)]
        array = image_array(image, f"dataset[{i}]")
        if images is None:
            images = np.empty((len(idx), *array.shape), dtype=array.dtype)
        elif array.shape != images.shape[1:]:
            raise ValueError(
                f"dataset[{i}] has shape {array.shape}, but earlier items have "
                f"{images.shape[1:]}; add a resize transform"
            )
        images[j] = array
        labels[j] = int(label)
    return images, labels


def raw_arrays(dataset: object, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style ``.data`` (N, H, W[, C]) uint8 and ``.targets``, read directly."""
    pixels = np.asarray(dataset.data)[idx]
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    return pixels, np.asarray(dataset.targets, dtype=np.int64)[idx]


def cifar_jpg_split(dataset: object, classes: tuple[str, ...]) -> str | None:
    """'train' or 'test' if ``dataset`` is an untransformed split of the CIFAR-10 ImageFolder
    (folder ``cifar10-jpg/<split>``, class folders ``classes``), else None."""
    if not isinstance(dataset, torchvision.datasets.ImageFolder):
        return None
    root = Path(dataset.root)
    if (
        root.parent.name != "cifar10-jpg"
        or root.name not in ("train", "test")
        or tuple(dataset.classes) != classes
        or dataset.transform is not None
        or dataset.target_transform is not None
    ):
        return None
    return root.name


def decoded_cache_path(dataset: object, split: str, folder: Path) -> Path:
    """Where the decoded arrays of ``dataset`` (a CIFAR-10 ImageFolder split) are cached."""
    # The name holds a fingerprint of the file list and sizes, so that a changed folder
    # never reuses arrays decoded from an older one.
    digest = hashlib.sha256()
    for path, label in dataset.samples:
        digest.update(f"{os.path.relpath(path, dataset.root)}\t{label}\t".encode())
        digest.update(f"{os.stat(path).st_size}\n".encode())
    return folder / f"cifar10-jpg-{split}-{digest.hexdigest()[:16]}.npz"


def read_decoded(path: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images, labels) at ``path`` if its hash and size check out, else None."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file():
        return None
    recorded = sidecar.read_text().split()[:1] if sidecar.is_file() else []
    if recorded != [cached_sha256(path)]:
        warnings.warn(
            f"{path} does not match its checksum in {sidecar.name}; decoding the JPEGs again",
            stacklevel=4,
        )
        return None
    with np.load(path, allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    if len(images) != n or len(labels) != n:
        warnings.warn(
            f"{path} holds {len(images)} images, expected {n}; decoding again", stacklevel=4
        )
        return None
    return images, labels


def write_decoded(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Cache (images, labels) at ``path`` with a ``.sha256`` sidecar; a failure only warns."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
        path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    except OSError as err:
        warnings.warn(f"could not cache decoded images in {path} ({err})", stacklevel=4)


def cifar_jpg_arrays(
    dataset: object, split: str, idx: np.ndarray, folder: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded CIFAR-10 JPEGs, from the .npz cache if present; a full decode fills it."""
    if len(idx) < len(dataset) and not any(folder.glob(f"cifar10-jpg-{split}-*.npz")):
        # A subset and nothing cached yet: skip fingerprinting 50,000 files.
        return gather(dataset, idx, f"decoding CIFAR-10 {split} JPEGs")
    path = decoded_cache_path(dataset, split, folder)
    cached = read_decoded(path, len(dataset))
    if cached is not None:
        images, labels = cached
        return images[idx], labels[idx]
    if len(idx) < len(dataset):  # a subset: decode only what is asked for
        return gather(dataset, idx, f"decoding CIFAR-10 {split} JPEGs")
    images, labels = gather(dataset, idx, f"decoding CIFAR-10 {split} JPEGs (cached after)")
    write_decoded(path, images, labels)
    return images, labels
