"""Moving weights between two implementations of the same network.

Two modules that compute the same thing register their tensors in the same order even
when they name them differently (``shortcut`` here, ``downsample`` there). Pairing the
two ``state_dict``s by position, and insisting that every pair has the same shape, loads
one into the other, and shows that the two are the same network tensor for tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["load_by_position"]


def load_by_position(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[tuple]:
    """Copy ``state_dict`` into ``model`` pairing entries by position, not by name.

    model: the module to load into; state_dict: another implementation's ``state_dict()``
    (parameters and buffers, in registration order). Raises ValueError naming
    ``state_dict`` if the number of entries or the shape of any pair differs; the model
    is then left unchanged. Returns the pairs ``(model name, state_dict name)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    own = model.state_dict()
    if len(own) != len(state_dict):
        raise ValueError(
            f"state_dict has {len(state_dict)} entries but the model has {len(own)}: "
            "they are not the same architecture"
        )
    pairs, renamed = [], {}
    for (name, mine), (other_name, theirs) in zip(own.items(), state_dict.items(), strict=True):
        if not isinstance(theirs, torch.Tensor):
            raise TypeError(f"state_dict[{other_name!r}] must be a tensor")
        if mine.shape != theirs.shape:
            raise ValueError(
                f"state_dict entry {other_name!r} has shape {tuple(theirs.shape)} but the "
                f"model's {name!r} at the same position has shape {tuple(mine.shape)}"
            )
        renamed[name] = theirs
        pairs.append((name, other_name))
    model.load_state_dict(renamed)
    return pairs
