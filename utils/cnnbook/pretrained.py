"""Pretrained torchvision classifiers, loaded one way for the whole book, and their input.

- ``load_pretrained``: any torchvision classification model by name with one of its
  weight sets; the file in torch's cache (``$TORCH_HOME/hub/checkpoints``) is checked
  against its SHA-256 before torch reads it, and offline a missing file raises
  ``WeightsNotFoundError`` saying which file to put where;
- ``weights_file`` / ``verify_weights``: that file and its check;
- ``IMAGENET_MEAN`` / ``IMAGENET_STD``: the channel statistics the weights expect, read
  from torchvision's own preprocessing (``weights.transforms()``), not typed in again;
- ``imagenet_normalize`` / ``imagenet_preprocess`` / ``imagenet_transform``: that
  preprocessing for tensors in [0, 1] and for PIL images;
- ``imagenet_categories``: the 1,000 class names.

The book's offline mirror holds MobileNetV2 ``IMAGENET1K_V1`` only; online, any weight set
of any torchvision classifier downloads the usual way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from cnnbook._checks import check_bool, check_pair
from cnnbook.integrity import sha256_file
from cnnbook.runtime import is_offline

# The weights the book uses wherever it needs "an ImageNet network".
IMAGENET_WEIGHTS = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1

# Full SHA-256 of the weight files the book uses (torchvision's file names carry only
# the first 8 to 10 hex digits). Files not listed are checked against that prefix.
KNOWN_SHA256: dict[str, str] = {
    "mobilenet_v2-b0353104.pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
}


def _normalization() -> tuple[tuple[float, ...], tuple[float, ...]]:
    transform = IMAGENET_WEIGHTS.transforms()  # torchvision's ImageClassification preset
    return tuple(transform.mean), tuple(transform.std)


# Channel statistics of ImageNet's training images, which torchvision's weights expect.
IMAGENET_MEAN, IMAGENET_STD = _normalization()


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not in the torch hub cache and could not be downloaded."""


class WeightsCorruptError(OSError):
    """A cached weight file does not match its SHA-256."""


# --------------------------------------------------------------------------- names


def check_arch(arch: object) -> str:
    """``arch`` if it names a torchvision classification model, else TypeError/ValueError."""
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a torchvision model name such as 'resnet18', got {arch!r}")
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"arch must be a torchvision classification model, got {arch!r}")
    return arch


def resolve_weights(arch: str, weights: object) -> torchvision.models.WeightsEnum | None:
    """``weights`` (a name such as "IMAGENET1K_V1", or the enum member) as the enum member.

    None stays None (random initialisation).
    """
    arch = check_arch(arch)
    if weights is None:
        return None
    enum = torchvision.models.get_model_weights(arch)
    if isinstance(weights, enum):
        return weights
    if not isinstance(weights, str):
        raise TypeError(f"weights must be a name such as 'IMAGENET1K_V1' or None, got {weights!r}")
    names = tuple(enum.__members__)
    if weights not in names:
        raise ValueError(f"weights must be one of {names} for {arch}, got {weights!r}")
    return enum[weights]


def weights_file(arch: str = "mobilenet_v2", weights: object = "IMAGENET1K_V1") -> Path:
    """Where torchvision keeps (or downloads) the weight file: ``$TORCH_HOME/hub/checkpoints/``."""
    member = resolve_weights(arch, weights)
    if member is None:
        raise ValueError("weights must name pretrained weights, got None")
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(member.url)


# --------------------------------------------------------------------------- checking


def verify_weights(path: str | os.PathLike) -> None:
    """Raise WeightsCorruptError unless the file's SHA-256 is the expected one.

    Expected: ``KNOWN_SHA256[file name]`` if listed, else the hex prefix torchvision puts
    in its names (``<name>-<first hex digits of the SHA-256>.pth``).
    """
    path = Path(path)
    digest = sha256_file(path)
    expected = KNOWN_SHA256.get(path.name)
    if expected is None:
        expected = path.stem.rsplit("-", 1)[-1].lower()
    if not digest.startswith(expected):
        raise WeightsCorruptError(
            f"{path} is corrupt or was replaced: its SHA-256 starts with {digest[:12]}, "
            f"but {path.name} must have the SHA-256 {expected}. Delete it (it is downloaded "
            "again online) or replace it with the original file."
        )


def _missing_help(arch: str, member: object, path: Path, reason: str) -> str:
    return (
        f"The {arch} weights {member} are not available: {path} does not exist and "
        f"{reason}.\nTo fix it, download {member.url}\nand put it, unchanged and with that "
        f"name, into {path.parent}/ (set TORCH_HOME to use another cache folder; torchvision "
        "looks in $TORCH_HOME/hub/checkpoints), or run once online."
    )


# --------------------------------------------------------------------------- loading


def load_pretrained(
    arch: str = "mobilenet_v2",
    weights: object = "IMAGENET1K_V1",
    *,
    download: bool | None = None,
    **kwargs: object,
) -> nn.Module:
    """A torchvision classifier, pretrained (``weights``) or randomly initialised (None).

    arch: a torchvision model name ("mobilenet_v2", "resnet18", "efficientnet_b0", ...).
    weights: the name of one of its weight sets (or the enum member); offline only
        MobileNetV2 "IMAGENET1K_V1" is in the book's mirror (note "DEFAULT" is V2 for
        MobileNetV2, a different file).
    download: None downloads only when the file is missing and the machine is online.
    kwargs: passed to torchvision's builder (e.g. ``norm_layer=FrozenBatchNorm2d``).
    A cached file is checked against its SHA-256 (WeightsCorruptError names the file); a
    missing file that cannot be downloaded raises WeightsNotFoundError saying where to put
    which file. The model is returned in training mode, on the CPU.
    """
    arch = check_arch(arch)
    member = resolve_weights(arch, weights)
    if download is not None:
        check_bool("download", download)
    if member is not None:
        path = weights_file(arch, member)
        if path.is_file():
            verify_weights(path)
        elif not ((not is_offline()) if download is None else download):
            reason = (
                "download=False was passed"
                if download is False
                else "this machine is offline (CNNBOOK_OFFLINE=0 forces a download attempt)"
            )
            raise WeightsNotFoundError(_missing_help(arch, member, path, reason))
    try:
        return torchvision.models.get_model(arch, weights=member, **kwargs)
    except (OSError, RuntimeError) as err:  # a failed download (URLError is an OSError)
        if member is None or isinstance(err, WeightsCorruptError):
            raise
        path = weights_file(arch, member)
        if path.is_file():  # downloaded but unreadable, or a builder error: not "missing"
            raise
        reason = f"the download failed ({err})"
        raise WeightsNotFoundError(_missing_help(arch, member, path, reason)) from err


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in index order (from torchvision; works offline)."""
    return tuple(IMAGENET_WEIGHTS.meta["categories"])


# --------------------------------------------------------------------------- preprocessing


def _normalize() -> Callable:
    return torchvision.transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(x - IMAGENET_MEAN) / IMAGENET_STD per channel; x: (..., 3, H, W) float in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a float torch.Tensor, got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"x must have shape (..., 3, H, W), got {tuple(x.shape)}")
    return _normalize()(x)


def imagenet_preprocess(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize images to ``size`` and normalise them with ImageNet's mean and std.

    x: (N, C, H, W) float in [0, 1], C = 3 (RGB) or 1 (grey, repeated to 3 channels).
    size: the output side, or (H_out, W_out). Small images (CIFAR's 32 x 32) are
    upsampled bilinearly (antialiased): pretrained filters expect objects at roughly
    ImageNet scale. Returns (N, 3, H_out, W_out) float32.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must have shape (N, 3 or 1, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must hold floats in [0, 1], got dtype {x.dtype} (divide by 255)")
    H_out, W_out = check_pair("size", size, minimum=1)
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"x must hold pixel values in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
    x = x.float().expand(-1, 3, -1, -1)  # grey -> RGB without a copy
    resize = torchvision.transforms.Resize((H_out, W_out), antialias=True)
    return _normalize()(resize(x))


def _to_rgb(image: object) -> object:
    # Module level (not a lambda) so DataLoader workers can pickle the transform.
    return image.convert("RGB")


def imagenet_transform(size: int | Sequence[int]) -> Callable:
    """The same preprocessing for PIL images (e.g. an ImageFolder): RGB, resize, to tensor,
    normalise. Returns a torchvision transform giving (3, H_out, W_out) float32."""
    H_out, W_out = check_pair("size", size, minimum=1)
    T = torchvision.transforms
    return T.Compose(
        [T.Lambda(_to_rgb), T.Resize((H_out, W_out), antialias=True), T.ToTensor(), _normalize()]
    )
