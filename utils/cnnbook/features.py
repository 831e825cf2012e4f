"""Looking inside a CNN: feature maps, first-layer filters, dead filters, activation maximisation.

Layers are named as in ``model.named_modules()``, e.g. ``"features.3"`` or ``"conv1"``.
Feature maps are read with **forward hooks**: functions PyTorch calls right after a module
has computed its output. A hook copies the output, and once every requested layer has
been seen it stops the forward pass early (later layers are not needed), which makes
probing an early layer of a big network cheap.

Images are float tensors ``x: (N, C, H, W)``; the caller normalises them the way the
model expects (or passes ``normalize=(mean, std)`` where a function offers it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cnnbook._checks import check_choice, check_int, check_pair
from cnnbook._torch_checks import check_images, check_model, eval_mode
from cnnbook.attacks import blur

SCALES = ("each", "all")


# ----------------------------------------------------------------------------- checks


def _check_number(name: str, value: object, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


def get_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule of ``model`` called ``layer`` (a name from ``model.named_modules()``)."""
    model = check_model(model)
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a str such as 'features.3', got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        names = [name for name in modules if name][:8]
        raise ValueError(
            f"layer {layer!r} is not in the model; names look like {', '.join(names)}, ... "
            "(see model.named_modules())"
        )
    return modules[layer]


def _layer_list(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    names = [layers] if isinstance(layers, str) else layers
    if not isinstance(names, Sequence) or len(names) == 0:
        raise ValueError(f"layers must be a name or a non-empty list of names, got {layers!r}")
    for name in names:
        get_layer(model, name)
    return list(dict.fromkeys(names))  # drop repeats, keep order


# ----------------------------------------------------------------------------- hooks


class _StopForward(Exception):
    """Raised by a hook once every requested output is captured: the rest is not needed."""


def _capture(
    model: nn.Module, x: torch.Tensor, layers: list[str], *, detach: bool, stop_early: bool
) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` with a hook on each layer; return {layer: its first output}."""
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if name in captured:
                return  # a module called twice: keep its first output
            if not isinstance(output, torch.Tensor):
                raise ValueError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
            # clone: a later in-place op (ReLU(inplace=True)) would overwrite the output
            captured[name] = output.detach().clone() if detach else output
            if stop_early and len(captured) == len(layers):
                raise _StopForward

        return hook

    handles = [get_layer(model, name).register_forward_hook(make_hook(name)) for name in layers]
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in layers if name not in captured]
    if missing:
        raise ValueError(f"layers {missing} were not run by the model's forward pass")
    return captured


def feature_maps(
    model: nn.Module, x: torch.Tensor, layers: str | Sequence[str], *, stop_early: bool = True
) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for the batch ``x``, read with forward hooks.

    x: (N, C, H, W) float, prepared as the model expects. layers: one name or several.
    Runs in eval mode without gradients (the model's mode is restored afterwards) and,
    with ``stop_early``, stops the forward pass once every layer has produced its output.
    Returns ``{layer: (N, C_l, H_l, W_l)}`` in the order given (copies, on x's device).
    """
    model = check_model(model)
    x = check_images("x", x)
    names = _layer_list(model, layers)
    with eval_mode(model), torch.no_grad():
        return _capture(model, x, names, detach=True, stop_early=stop_early)


# ----------------------------------------------------------------------------- filters


def filter_grid(
    weight: torch.Tensor, *, ncols: int | None = None, pad: int = 1, scale: str = "each"
) -> np.ndarray:
    """Tile first-layer filters into one picture.

    weight: (C_out, C_in, k_h, k_w) with C_in 1 (grey) or 3 (RGB), e.g. ``conv.weight``.
    scale: "each" scales every filter by its own largest |weight|, "all" by the largest of
        all (so sizes compare). ncols: filters per row (default about sqrt(C_out)).
    Grey filters give a signed array (rows, cols) in [-1, 1] for a diverging colour map
    centred on zero; RGB filters give (rows, cols, 3) in [0, 1] with 0.5 meaning zero.
    Gaps between filters are 0 (grey) or 0.5 (RGB): both read as "zero weight".
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.ndim != 4 or weight.shape[1] not in (1, 3):
        raise ValueError(
            f"weight must have shape (C_out, 1 or 3, k_h, k_w), got {tuple(weight.shape)}"
        )
    check_choice("scale", scale, SCALES)
    pad = check_int("pad", pad, minimum=0)
    C_out, C_in, k_h, k_w = weight.shape
    ncols = math.ceil(math.sqrt(C_out)) if ncols is None else check_int("ncols", ncols, minimum=1)
    nrows = math.ceil(C_out / ncols)
    w = weight.detach().cpu().double().numpy()
    if scale == "each":
        peak = np.abs(w).reshape(C_out, -1).max(axis=1).reshape(C_out, 1, 1, 1)
    else:
        peak = np.full((C_out, 1, 1, 1), np.abs(w).max())
    w = w / np.where(peak > 0, peak, 1.0)  # in [-1, 1]
    grid = np.zeros((C_in, nrows * (k_h + pad) + pad, ncols * (k_w + pad) + pad))
    for i in range(C_out):
        r, c = divmod(i, ncols)
        top, left = pad + r * (k_h + pad), pad + c * (k_w + pad)
        grid[:, top : top + k_h, left : left + k_w] = w[i]
    if C_in == 1:
        return grid[0]
    return 0.5 + 0.5 * grid.transpose(1, 2, 0)  # RGB: zero weight is mid-grey


# ----------------------------------------------------------------------------- dead filters


def dead_channels(activations: torch.Tensor, *, tol: float = 0.0) -> torch.Tensor:
    """Which channels never fire: output <= tol at every position of every image.

    activations: (N, C, H, W), typically after a ReLU. Returns a bool tensor (C,).
    """
    activations = check_images("activations", activations)
    tol = _check_number("tol", tol, minimum=0.0)
    return activations.amax(dim=(0, 2, 3)) <= tol


def count_dead(
    model: nn.Module, x: torch.Tensor, layers: str | Sequence[str], *, tol: float = 0.0
) -> dict[str, tuple[int, int]]:
    """Dead channels of each named layer on the probe images ``x``: {layer: (dead, total)}.

    x: (N, C, H, W), as the model expects; layers: outputs after a ReLU (or ReLU6).
    A channel counts as dead when it is <= tol everywhere on every probe image, so use
    many varied images: a channel silent on a few may still fire on others.
    """
    maps = feature_maps(model, x, layers)
    result = {}
    for name, acts in maps.items():
        dead = dead_channels(acts, tol=tol)
        result[name] = (int(dead.sum()), int(dead.numel()))
    return result


# ----------------------------------------------------------------------------- activation max


@dataclass
class ActivationMax:
    """Result of ``maximize_activation``.

    image, start: (C, H, W) in [0, 1], the optimised and the starting image.
    objective: the channel's mean activation at every step (on the jittered image).
    start_value, final_value: the mean activation for ``start`` and ``image`` (no jitter).
    """

    image: torch.Tensor
    start: torch.Tensor
    start_value: float
    final_value: float
    objective: list[float] = field(default_factory=list)


def _normalizer(normalize: object, channels: int, device: torch.device):
    if normalize is None:
        return lambda x: x
    if not isinstance(normalize, tuple | list) or len(normalize) != 2:
        raise TypeError(f"normalize must be (mean, std) or None, got {normalize!r}")
    mean, std = (torch.as_tensor(v, dtype=torch.float32, device=device) for v in normalize)
    if mean.numel() != channels or std.numel() != channels or not bool((std > 0).all()):
        raise ValueError(f"normalize must hold {channels} means and {channels} positive stds")
    mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return lambda x: (x - mean) / std


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No gradients for the weights (only the image is optimised), then restore."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def channel_activation(
    model: nn.Module,
    layer: str,
    channel: int,
    x: torch.Tensor,
    *,
    normalize: tuple | None = None,
) -> torch.Tensor:
    """Mean activation of one channel of ``layer`` for each image: x (N, C, H, W) -> (N,).

    x in [0, 1] if ``normalize=(mean, std)`` is given (applied first), else model-ready.
    """
    x = check_images("x", x)
    maps = feature_maps(model, _normalizer(normalize, x.shape[1], x.device)(x), layer)[layer]
    channel = check_int("channel", channel, minimum=0)
    if channel >= maps.shape[1]:
        raise ValueError(f"channel must be < {maps.shape[1]} (channels of {layer}), got {channel}")
    return maps[:, channel].mean(dim=(1, 2))


def maximize_activation(
    model: nn.Module,
    layer: str,
    channel: int,
    *,
    size: int | tuple[int, int] = 96,
    channels: int = 3,
    steps: int = 100,
    lr: float = 0.05,
    jitter: int = 4,
    blur_sigma: float = 0.5,
    blur_every: int = 4,
    normalize: tuple | None = None,
    seed: int = 0,
) -> ActivationMax:
    """Gradient ascent on the pixels of one image to maximise a channel's mean activation.

    Starts from faint noise around mid-grey, (channels, H, W) with H, W = ``size``. Each
    step shifts the image by up to ``jitter`` pixels at random (so the picture cannot rely
    on exact pixel positions), takes an Adam step of size ``lr`` up the gradient and
    clips to [0, 1]; every ``blur_every`` steps a Gaussian blur of ``blur_sigma`` pixels
    removes the high-frequency noise that gradient ascent favours. ``normalize=(mean, std)``
    turns the [0, 1] image into the model's input (e.g. ImageNet statistics).
    The model is in eval mode throughout and its weights are not changed.
    """
    model = check_model(model)
    get_layer(model, layer)
    channel = check_int("channel", channel, minimum=0)
    H, W = check_pair("size", size, minimum=8)
    channels = check_int("channels", channels, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    lr = _check_number("lr", lr)
    jitter = check_int("jitter", jitter, minimum=0)
    blur_sigma = _check_number("blur_sigma", blur_sigma)
    blur_every = check_int("blur_every", blur_every, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    prep = _normalizer(normalize, channels, device)
    generator = torch.Generator().manual_seed(seed)
    start = (0.5 + 0.02 * torch.randn(1, channels, H, W, generator=generator)).clamp(0, 1)
    image = start.clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=lr)
    objective = []
    with eval_mode(model), _frozen(model):
        for step in range(steps):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            shifted = torch.roll(image, shifts=(dy, dx), dims=(2, 3))
            acts = _capture(model, prep(shifted), [layer], detach=False, stop_early=True)[layer]
            if channel >= acts.shape[1]:
                raise ValueError(f"channel must be < {acts.shape[1]} (channels of {layer})")
            value = acts[0, channel].mean()
            optimizer.zero_grad()
            (-value).backward()  # ascent: minimise the negative
            optimizer.step()
            with torch.no_grad():
                if blur_sigma > 0 and (step + 1) % blur_every == 0:
                    image.copy_(blur(image, blur_sigma))
                image.clamp_(0, 1)
            objective.append(value.item())
    final = image.detach()
    values = channel_activation(
        model, layer, channel, torch.cat([start.to(device), final]), normalize=normalize
    )
    return ActivationMax(
        image=final[0].cpu(),
        start=start[0],
        start_value=float(values[0]),
        final_value=float(values[1]),
        objective=objective,
    )
