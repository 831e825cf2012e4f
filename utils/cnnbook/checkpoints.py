"""Checkpoints: a model's weights and its ``History`` in one ``.pt`` file, verified by SHA-256.

``save_checkpoint`` writes ``{"model": state_dict on CPU, "history": plain lists}`` and a
``path.sha256`` sidecar in ``sha256sum``'s format; ``load_checkpoint`` checks the hash
before it reads a byte of the file with ``torch.load(weights_only=True)``, so a swapped or
damaged file raises ``CheckpointCorruptError`` instead of loading.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cnnbook._torch_checks import check_model
from cnnbook.history import History
from cnnbook.integrity import sha256_file


class CheckpointCorruptError(OSError):
    """A checkpoint file does not match the SHA-256 recorded next to it (or that is missing)."""


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, history: History) -> Path:
    """Write ``{"model": state_dict on CPU, "history": plain lists}`` and ``path.sha256``.

    The file is written under a temporary name and renamed, so an interrupted save never
    leaves a half-written checkpoint behind. Returns the path.
    """
    model = check_model(model)
    if not isinstance(history, History):
        raise TypeError(f"history must be a History, got {type(history).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": state, "history": history.to_dict()}, tmp)
    os.replace(tmp, path)
    # sha256sum's format, so `sha256sum -c path.pt.sha256` works from a shell too.
    _sidecar(path).write_text(f"{sha256_file(path)}  {path.name}\n")
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> History:
    """Verify ``path`` against ``path.sha256``, load the weights into ``model``, return the
    History. Raises CheckpointCorruptError if the hash is missing or does not match."""
    model = check_model(model)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointCorruptError(
            f"checkpoint {path} has no SHA-256 file {sidecar.name}, so it cannot be verified; "
            f"delete {path} to train again"
        )
    words = sidecar.read_text().split()
    expected = words[0].lower() if words else ""
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointCorruptError(
            f"checkpoint {path} is corrupt or was replaced: its SHA-256 is {actual}, "
            f"but {sidecar.name} records {expected or '(nothing)'}; "
            "delete both files to train again"
        )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    saved = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    return History.from_dict(saved["history"])
