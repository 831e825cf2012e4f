"""CIFAR-10 in one file: the ImageFolder's JPEG bytes packed to travel (e.g. to a GPU machine).

The offline mirror holds CIFAR-10 as 60,000 small JPEG files (236 MB on disk). A machine
that takes at most 64 MiB of files with a command gets them as one ``.npz`` instead:

* every JPEG of the mirror starts with the same 623 header bytes (quantisation and
  Huffman tables), so the pack stores the longest common prefix once and, for each
  image, only the bytes after it: about 18 MB for all 60,000 images;
* ``{split}_offsets`` (n + 1,) cut ``{split}_suffixes`` into images, ``{split}_labels``
  (n,) are the ImageFolder labels, ``classes`` the class names, in ImageFolder order
  (classes sorted, file names sorted within a class);
* ``sha256`` is the SHA-256 of all of the above, checked every time the file is opened.

Decoding ``prefix + suffix`` with PIL gives byte for byte the file the ImageFolder reads,
so the images are exactly the same. ``cnnbook.data.cifar10`` finds the pack as
``cifar10-pack.npz`` in a data folder, or wherever ``CNNBOOK_CIFAR_PACK`` points.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PACK_NAME = "cifar10-pack.npz"
PACK_FORMAT = "cnnbook-cifar10-pack-1"
SPLITS = ("train", "test")


class PackCorruptError(OSError):
    """A pack file is not a CIFAR-10 pack, or its contents do not match its SHA-256."""


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the classes, the shared prefix and every split's offsets, labels, bytes."""
    h = hashlib.sha256(PACK_FORMAT.encode())
    h.update("\n".join(str(c) for c in arrays["classes"]).encode())
    h.update(np.ascontiguousarray(arrays["prefix"], dtype=np.uint8).tobytes())
    for split in SPLITS:
        for key, dtype in (("offsets", np.int64), ("labels", np.int64), ("suffixes", np.uint8)):
            h.update(np.ascontiguousarray(arrays[f"{split}_{key}"], dtype=dtype).tobytes())
    return h.hexdigest()


def pack_cifar10(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Pack the ImageFolder ``source/{train,test}/<class>/*.jpg`` into the file ``out``.

    source: the ``cifar10-jpg`` folder. out: the .npz to write (its folder is created);
    it is written under a temporary name and renamed, so a failed run leaves nothing.
    Returns ``out``. The image order and labels are torchvision ImageFolder's.
    """
    import torchvision  # here: opening a pack needs only NumPy and PIL

    source, out = Path(source), Path(out)
    if not all((source / split).is_dir() for split in SPLITS):
        raise ValueError(f"source must be a folder with train/ and test/ inside, got {source}")
    files: dict[str, list[bytes]] = {}
    arrays: dict[str, np.ndarray] = {}
    classes = None
    for split in SPLITS:
        folder = torchvision.datasets.ImageFolder(str(source / split))
        if classes is not None and folder.classes != classes:
            raise ValueError(f"source: train and test have different classes in {source}")
        classes = folder.classes
        files[split] = [Path(path).read_bytes() for path, _ in folder.samples]
        arrays[f"{split}_labels"] = np.array(folder.targets, dtype=np.int64)
    prefix = os.path.commonprefix([blob for split in SPLITS for blob in files[split]])
    arrays["classes"] = np.array(classes)
    arrays["prefix"] = np.frombuffer(prefix, dtype=np.uint8)
    for split in SPLITS:
        suffixes = [blob[len(prefix) :] for blob in files[split]]
        lengths = np.array([len(s) for s in suffixes], dtype=np.int64)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{split}_suffixes"] = np.frombuffer(b"".join(suffixes), dtype=np.uint8)
    arrays["format"] = np.array(PACK_FORMAT)
    arrays["sha256"] = np.array(_digest(arrays))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # not compressed: JPEG bytes do not compress
    os.replace(tmp, out)
    return out


_VERIFIED: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def open_pack(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of the pack at ``path``, after checking its format and SHA-256.

    Opened once per process for each (path, size, modification time). Raises
    FileNotFoundError if it is missing, PackCorruptError if it is not a good pack.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the CIFAR-10 pack {path} does not exist")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError) as err:
            raise PackCorruptError(f"{path} is not a readable .npz file ({err})") from err
        fmt = str(arrays["format"]) if "format" in arrays else "(none)"
        if fmt != PACK_FORMAT or "sha256" not in arrays:
            raise PackCorruptError(f"{path} is not a CIFAR-10 pack: format {fmt}")
        try:
            actual = _digest(arrays)
        except KeyError as err:
            raise PackCorruptError(f"{path} lacks the array {err}") from err
        if actual != str(arrays["sha256"]):
            raise PackCorruptError(
                f"{path} is corrupt: its contents hash to {actual[:16]}..., but it records "
                f"{str(arrays['sha256'])[:16]}...; pack it again (tools/pack_cifar.py)"
            )
        _VERIFIED[key] = arrays
    return _VERIFIED[key]


class PackedCIFAR10(torch.utils.data.Dataset):
    """One split of a CIFAR-10 pack as a dataset like torchvision's ImageFolder.

    Items are ``(PIL image 32x32 RGB, int label)`` (after ``transform`` if given);
    ``.classes``, ``.class_to_idx`` and ``.targets`` as in ImageFolder.
    """

    def __init__(
        self, path: str | os.PathLike, split: str, transform: Callable | None = None
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        arrays = open_pack(path)
        self.path, self.split, self.transform = Path(path), split, transform
        self.target_transform = None
        self.classes = [str(c) for c in arrays["classes"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self._prefix = arrays["prefix"].tobytes()
        self._offsets = arrays[f"{split}_offsets"]
        self._suffixes = arrays[f"{split}_suffixes"]
        self._labels = arrays[f"{split}_labels"]
        self.targets = self._labels.tolist()

    def __len__(self) -> int:
        return len(self._labels)

    def jpeg_bytes(self, i: int) -> bytes:
        """The i-th image's JPEG file, byte for byte."""
        start, stop = self._offsets[i], self._offsets[i + 1]
        return self._prefix + self._suffixes[start:stop].tobytes()

    def _image(self, i: int) -> Image.Image:
        # As ImageFolder's default loader: open, then convert to RGB.
        return Image.open(io.BytesIO(self.jpeg_bytes(i))).convert("RGB")

    def __getitem__(self, i: int) -> tuple[object, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for {len(self)} images")
        i = i % len(self)
        image = self._image(i)
        return (self.transform(image) if self.transform else image), int(self._labels[i])

    def decode(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images idx as ``(k, 3, 32, 32)`` uint8 and their labels ``(k,)`` int64."""
        idx = np.asarray(idx, dtype=np.int64)
        images = np.empty((len(idx), 3, 32, 32), dtype=np.uint8)
        for j, i in enumerate(idx):
            images[j] = np.asarray(self._image(int(i))).transpose(2, 0, 1)
        return images, self._labels[idx].astype(np.int64)


def pack_path(roots: list[Path]) -> Path | None:
    """The pack to use: ``CNNBOOK_CIFAR_PACK`` if set (it must exist), else the first
    ``cifar10-pack.npz`` in ``roots``, else None."""
    env = os.environ.get("CNNBOOK_CIFAR_PACK", "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"CNNBOOK_CIFAR_PACK={env} names no file")
        return path
    return next((root / PACK_NAME for root in roots if (root / PACK_NAME).is_file()), None)
