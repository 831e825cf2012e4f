"""The data adapter of ``fit``, ``evaluate`` and ``predict``: one data source as batches.

Data may be an ``(X, y)`` pair of tensors or arrays (the fast path for small data held in
memory: the tensors move to the device once and batches are cut there, no DataLoader), a
``torch.utils.data.Dataset`` or a ``DataLoader`` (used as given). ``Batches`` also knows
which labels to range-check before the first optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset


def as_tensor(name: str, value: object) -> torch.Tensor:
    """A tensor as it is, or a NumPy array as a tensor (float64 becomes the default dtype)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        t = torch.from_numpy(value)
        # NumPy defaults to float64; models use float32.
        return t.to(torch.get_default_dtype()) if t.dtype.is_floating_point else t
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


class Batches:
    """Batches ``(x, y)`` of one data source, already on ``device``; one pass per ``iter``.

    For an ``(X, y)`` pair the tensors move to the device once and each epoch draws a
    permutation from a seeded generator; otherwise a DataLoader does the work.
    """

    def __init__(
        self,
        name: str,
        data: object,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: torch.device,
    ) -> None:
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.X: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.loader: DataLoader | None = None
        if isinstance(data, tuple | list) and not isinstance(data, Dataset):
            self._from_tensors(data)
        elif isinstance(data, DataLoader):
            self.loader = data
        elif isinstance(data, Dataset):
            if _safe_len(data) == 0:
                raise ValueError(f"{name} is empty: the dataset has 0 samples")
            self.loader = DataLoader(
                data,
                batch_size=batch_size,
                shuffle=shuffle,
                generator=self.generator,
                pin_memory=device.type == "cuda",
            )
        else:
            raise TypeError(
                f"{name} must be an (X, y) tuple of tensors, a torch Dataset or a DataLoader, "
                f"got {type(data).__name__}"
            )
        if self.loader is not None and _safe_len(self.loader.dataset) == 0:
            raise ValueError(f"{name} is empty: its dataset has 0 samples")

    def _from_tensors(self, data: Sequence) -> None:
        if len(data) != 2:
            raise ValueError(f"{self.name} as a tuple must be (X, y), got {len(data)} items")
        X = as_tensor(f"{self.name}[0] (X)", data[0])
        y = as_tensor(f"{self.name}[1] (y)", data[1])
        if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"{self.name}: X and y must have the same number of samples, "
                f"got shapes {tuple(X.shape)} and {tuple(y.shape)}"
            )
        if X.shape[0] == 0:
            raise ValueError(f"{self.name} is empty: X has 0 samples")
        self.X, self.y = X.to(self.device), _long_labels(y).to(self.device)

    def __len__(self) -> int | None:
        if self.X is not None:
            return math.ceil(self.X.shape[0] / self.batch_size)
        return _safe_len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.X is not None:
            n = self.X.shape[0]
            if self.shuffle:
                order = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, self.batch_size):
                if self.shuffle:
                    idx = order[start : start + self.batch_size]
                    yield self.X[idx], self.y[idx]
                else:
                    yield (
                        self.X[start : start + self.batch_size],
                        self.y[start : start + self.batch_size],
                    )
            return
        for batch in self.loader:
            if not isinstance(batch, list | tuple) or len(batch) < 2:
                raise ValueError(
                    f"{self.name} must yield (x, y) batches, got {type(batch).__name__}"
                )
            x, y = batch[0], _long_labels(batch[1])
            self.cpu_labels = y  # checked before the move, where it costs no device sync
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def labels_to_check(self, first_batch: bool) -> torch.Tensor | None:
        """The labels to range-check now: at the first batch all of them if they are known
        (an (X, y) pair, a TensorDataset, a torchvision dataset's ``targets``), so that a
        bad label stops the run before any step; then each batch's CPU copy."""
        if self.X is not None:
            return self.y if first_batch else None
        if first_batch:
            known = _known_labels(self.loader.dataset)
            batch = self.cpu_labels
            # A collate_fn may turn integer labels into soft (N, K) targets (Mixup, CutMix):
            # then the dataset's labels and the batch's are checked separately.
            if known is not None and batch.ndim == 1 and not batch.dtype.is_floating_point:
                return torch.cat([known, batch])
            if known is not None:
                return known
        return self.cpu_labels


def _known_labels(dataset: object) -> torch.Tensor | None:
    """All labels of a dataset without loading its images, or None if that is not cheap."""
    if isinstance(dataset, Subset):
        inner = _known_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        labels = dataset.tensors[1]
    else:
        labels = getattr(dataset, "targets", None)
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        return None
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
        return None
    return labels.long()


def _safe_len(obj: object) -> int | None:
    try:
        return len(obj)
    except TypeError:  # an IterableDataset may not know its length
        return None


def _long_labels(y: torch.Tensor) -> torch.Tensor:
    """Integer labels become int64 (what cross-entropy wants); soft targets stay float."""
    if isinstance(y, torch.Tensor) and not y.dtype.is_floating_point:
        return y.long()
    return y
