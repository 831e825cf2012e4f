"""Attribution maps for image classifiers: Captum's methods wrapped to return (H, W) arrays.

Every attribution function takes a model, an input ``x: (1, C, H, W)`` float tensor (one
image, already normalised, e.g. by :func:`preprocess`) and a target class, and returns a
NumPy array ``(H, W)`` at the input's resolution, ready for :func:`cnnbook.viz.overlay`:

=====================  ========================================  =====================
function               what it measures                          normalised range
=====================  ========================================  =====================
saliency               abs. gradient of the class score          [0, 1], 99th pct.
integrated_gradients   path-integrated gradient x input          [-1, 1], 99th pct.
occlusion              score drop when a patch is greyed out     [-1, 1], max abs
grad_cam               channel-weighted feature map (ReLU/none)  [0, 1] or [-1, 1]
guided_grad_cam        guided backprop x upsampled Grad-CAM      [0, 1], 99th pct.
=====================  ========================================  =====================

"99th pct." means the map is divided by the 99th percentile of its absolute values and
clipped, so a handful of extreme pixels cannot wash out the rest (see
:func:`normalize_map`). Pass ``normalize=False`` for the raw values, e.g. to compare with
Captum directly. The model must be in eval mode (dropout and batch-norm statistics fixed),
otherwise two calls give different maps.

:func:`grad_cam_from_scratch` computes Grad-CAM with a forward hook and a gradient hook
instead of Captum; chapter 13 derives it and checks it against :func:`grad_cam`.
:func:`guided_copy` makes MobileNetV2's ReLU6 visible to Captum's guided backprop.
Helpers for real photos: :func:`pretrained_mobilenet_v2`, :func:`preprocess`, :func:`top_k`
(built on ``cnnbook.pretrained`` and ``cnnbook.photos.square_photo``).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import nn

from cnnbook._checks import check_array, check_int
from cnnbook._torch_checks import check_model, eval_mode
from cnnbook.photos import square_photo
from cnnbook.pretrained import (
    IMAGENET_WEIGHTS,
    imagenet_categories,
    imagenet_normalize,
    load_pretrained,
)

T = TypeVar("T")


class Prediction(NamedTuple):
    """One line of a top-k list: class index, class name, softmax probability."""

    index: int
    name: str
    probability: float


# --------------------------------------------------------------------------- photos and model


def pretrained_mobilenet_v2() -> nn.Module:
    """torchvision's ImageNet MobileNetV2 (weights IMAGENET1K_V1) in eval mode, frozen.

    Loaded by ``cnnbook.pretrained.load_pretrained``: the file in torch's cache
    (``$TORCH_HOME/hub/checkpoints``) is checked against its SHA-256, downloaded when
    missing and online; offline without it, a WeightsNotFoundError says where to put it.
    The parameters do not require gradients (attribution needs gradients with respect to
    the input and activations only, which is cheaper); the input still gets them.
    """
    model = load_pretrained("mobilenet_v2", IMAGENET_WEIGHTS).eval()
    model.requires_grad_(False)
    return model


def preprocess(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """A photo as the ImageNet models expect it: centre square, resized, standardised.

    image: (H, W) or (H, W, 3), uint8 or floats in [0, 1].
    Returns x: (1, 3, size, size) float32, (value - IMAGENET_MEAN) / IMAGENET_STD per channel.
    """
    photo = torch.from_numpy(square_photo(image, size)).permute(2, 0, 1)  # (3, size, size)
    return imagenet_normalize(photo)[None]


# --------------------------------------------------------------------------- argument checks


def _check_input(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a torch.Tensor of shape (1, C, H, W) (see preprocess), "
            f"got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"x must hold floats (e.g. float32), got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must have shape (1, C, H, W): one image, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x must hold finite values")
    return x


def _class_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """logits: (1, num_classes) for x, without building a graph."""
    with torch.no_grad():
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return class scores of shape (1, num_classes), got {shape}")
    return logits


def _check_target(target: object, num_classes: int) -> int:
    target = check_int("target", target, minimum=0)
    if target >= num_classes:
        raise ValueError(
            f"target must be a class index in [0, {num_classes - 1}] "
            f"(the model has {num_classes} classes), got {target}"
        )
    return target


def _prepare(model: object, x: object, target: object) -> tuple[nn.Module, torch.Tensor, int]:
    """Check (model, x, target); return x as a fresh leaf that requires gradients."""
    model = check_model(model)
    x = _check_input(x)
    target = _check_target(target, _class_scores(model, x).shape[1])
    return model, x.detach().clone().requires_grad_(True), target


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> tuple[str, nn.Module]:
    """(name, module) of ``layer`` in ``model``; layer is a submodule or its dotted name.

    Names are those of ``model.named_modules()``, e.g. ``"features.18"`` in MobileNetV2.
    """
    model = check_model(model)
    names = {name: module for name, module in model.named_modules() if name}
    if isinstance(layer, str):
        if layer not in names:
            examples = ", ".join(list(names)[:5])
            raise ValueError(
                f"layer {layer!r} is not a submodule of model (names: {examples}, ...)"
            )
        return layer, names[layer]
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module or its name, got {type(layer).__name__}")
    for name, module in names.items():
        if module is layer:
            return name, module
    raise ValueError(f"layer ({type(layer).__name__}) is not a submodule of model")


def _check_feature_map(attribution: torch.Tensor, layer_name: str) -> None:
    if attribution.ndim != 4:
        raise ValueError(
            f"layer {layer_name!r} must output a feature map (1, C, h, w) for Grad-CAM, "
            f"got an output with {attribution.ndim} dimensions"
        )


# --------------------------------------------------------------------------- normalisation


def normalize_map(attribution: np.ndarray, *, signed: bool, percentile: float = 99.0) -> np.ndarray:
    """Scale an attribution map for display, robustly to a few extreme values.

    attribution: (H, W). signed=False takes absolute values and returns [0, 1]; signed=True
    keeps signs and returns [-1, 1]. Values are divided by the given percentile of
    ``|attribution|`` (100 = the maximum) and clipped. An all-zero map stays all zero.
    """
    attribution = check_array("attribution", attribution, ndim=2).astype(np.float32)
    if not isinstance(signed, bool):
        raise TypeError(f"signed must be a bool, got {type(signed).__name__}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
        raise TypeError(f"percentile must be a number, got {type(percentile).__name__}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    values = attribution if signed else np.abs(attribution)
    scale = float(np.percentile(np.abs(values), percentile))
    if not np.isfinite(scale) or scale == 0.0:
        return np.zeros_like(values)
    return np.clip(values / scale, -1.0 if signed else 0.0, 1.0)


# --------------------------------------------------------------------------- attribution methods


def _in_eval_mode(attribute: Callable[..., T]) -> Callable[..., T]:
    """Run an attribution function with ``model`` (its first argument) in eval mode.

    A model left in training mode would update BatchNorm's running statistics on the
    photo being explained and use batch statistics of a single image, which changes the
    map (Grad-CAM on MobileNetV2 in train mode correlates at r = 0.16 with the eval-mode
    map). Every submodule's mode is restored afterwards.
    """

    @functools.wraps(attribute)
    def wrapper(model: object, *args: object, **kwargs: object) -> T:
        if not isinstance(model, nn.Module):
            return attribute(model, *args, **kwargs)  # the argument check reports it
        with eval_mode(model):
            return attribute(model, *args, **kwargs)

    return wrapper


@_in_eval_mode
def saliency(
    model: nn.Module, x: torch.Tensor, target: int, *, normalize: bool = True
) -> np.ndarray:
    """Vanilla gradient saliency: max over channels of |d score_target / d x|.

    x: (1, C, H, W). Returns (H, W); normalised to [0, 1] (99th percentile) by default.
    """
    model, x, target = _prepare(model, x, target)
    grads = Saliency(model).attribute(x, target=target, abs=True)  # (1, C, H, W)
    heat = grads[0].max(dim=0).values.detach().numpy()
    return normalize_map(heat, signed=False) if normalize else heat


@_in_eval_mode
def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    *,
    baseline: torch.Tensor | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 4,
    normalize: bool = True,
    return_delta: bool = False,
) -> np.ndarray | tuple[np.ndarray, float]:
    """Integrated Gradients from ``baseline`` to x, summed over channels.

    x: (1, C, H, W); baseline: same shape, default zeros (after ImageNet normalisation, a
    flat image of the mean colour). n_steps: points of the path integral (Gauss-Legendre);
    internal_batch_size: how many of them go through the model at once (memory).
    Returns (H, W), signed, normalised to [-1, 1] (99th percentile) by default; with
    return_delta=True also the convergence delta, sum(attributions) - (F(x) - F(baseline)),
    which shrinks towards 0 as n_steps grows.
    """
    model, x, target = _prepare(model, x, target)
    if baseline is None:
        baseline = torch.zeros_like(x)
    elif not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be a torch.Tensor or None, got {type(baseline).__name__}")
    elif baseline.shape != x.shape:
        raise ValueError(
            f"baseline must have the shape of x {tuple(x.shape)}, got {tuple(baseline.shape)}"
        )
    n_steps = check_int("n_steps", n_steps, minimum=2)
    internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
    attributions, delta = IntegratedGradients(model).attribute(
        x,
        baselines=baseline.to(x.dtype),
        target=target,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    heat = attributions[0].sum(dim=0).detach().numpy()  # (H, W)
    heat = normalize_map(heat, signed=True) if normalize else heat
    return (heat, float(delta)) if return_delta else heat


@_in_eval_mode
def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    *,
    window: int = 32,
    stride: int = 16,
    baseline: float = 0.0,
    batch_size: int = 16,
    normalize: bool = True,
) -> np.ndarray:
    """Occlusion: how much the target score drops when a window x window patch is replaced.

    x: (1, C, H, W). The patch (all channels) is set to ``baseline`` (0 = the mean colour
    after ImageNet normalisation) at every stride-th position; a pixel's value is the
    average drop over the patches that cover it. Cost: one forward pass per position,
    (ceil((H - window) / stride) + 1) * (ceil((W - window) / stride) + 1) (Captum clips a
    last window at the border so every pixel is covered), run batch_size at a time.
    Returns (H, W), signed (positive: the patch supported the class), normalised to
    [-1, 1] by the maximum by default.
    """
    model, x, target = _prepare(model, x, target)
    C, H, W = x.shape[1:]
    window = check_int("window", window, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if window > min(H, W):
        raise ValueError(f"window must be at most the image side {min(H, W)}, got {window}")
    if stride > window:
        raise ValueError(
            f"stride must be at most window ({window}) so no pixel is skipped, got {stride}"
        )
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a number, got {type(baseline).__name__}")
    with torch.no_grad():
        attributions = Occlusion(model).attribute(
            x.detach(),
            target=target,
            sliding_window_shapes=(C, window, window),
            strides=(C, stride, stride),
            baselines=float(baseline),
            perturbations_per_eval=batch_size,
        )
    heat = attributions[0].mean(dim=0).numpy()  # the same value in every channel
    return normalize_map(heat, signed=True, percentile=100.0) if normalize else heat


@_in_eval_mode
def grad_cam(
    model: nn.Module,
    layer: nn.Module | str,
    x: torch.Tensor,
    target: int,
    *,
    relu: bool = True,
    upsample: bool = True,
    normalize: bool = True,
) -> np.ndarray:
    """Grad-CAM with Captum's LayerGradCam, upsampled bilinearly to the input size.

    x: (1, C, H, W); layer: a submodule (or its name) that outputs a feature map
    A: (1, K, h, w). The map is sum_k w_k A_k with w_k the spatial mean of
    d score_target / d A_k; relu=True keeps only the positive evidence (the paper's choice).
    Returns (H, W) (or (h, w) with upsample=False); normalised by the maximum (absolute)
    value to [0, 1] with relu, [-1, 1] without, unless normalize=False.
    """
    model, x, target = _prepare(model, x, target)
    name, module = resolve_layer(model, layer)
    cam = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=relu)
    _check_feature_map(cam, name)
    if upsample:
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
    heat = cam[0, 0].detach().numpy()
    return normalize_map(heat, signed=not relu, percentile=100.0) if normalize else heat


@_in_eval_mode
def grad_cam_from_scratch(
    model: nn.Module, layer: nn.Module | str, x: torch.Tensor, target: int, *, relu: bool = True
) -> np.ndarray:
    """Grad-CAM without Captum: raw map (h, w) at the layer's resolution.

    A forward hook on ``layer`` keeps its output A: (1, K, h, w) and puts a hook on that
    tensor which keeps dL/dA during the backward pass (L = the target's score). Then
    w_k = mean over (i, j) of dL/dA[k, i, j], and the map is sum_k w_k A_k (ReLU optional).
    Matches grad_cam(..., upsample=False, normalize=False) to float rounding.
    """
    model, x, target = _prepare(model, x, target)
    name, module = resolve_layer(model, layer)
    saved: dict[str, torch.Tensor] = {}

    def keep_gradient(grad: torch.Tensor) -> None:
        saved["gradient"] = grad

    def keep_activation(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        saved["activation"] = output
        output.register_hook(keep_gradient)  # runs when backward reaches this tensor

    handle = module.register_forward_hook(keep_activation)
    try:
        score = model(x)[0, target]
    finally:
        handle.remove()  # hooks stay until removed: never leave one behind
    activation = saved["activation"]
    _check_feature_map(activation, name)
    # Differentiate with respect to x (not the weights): fires the tensor hook, and
    # leaves no .grad behind on the model's parameters.
    torch.autograd.grad(score, x)
    weights = saved["gradient"].mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
    cam = (weights * activation).sum(dim=1)[0]  # (h, w)
    if relu:
        cam = F.relu(cam)
    return cam.detach().numpy()


class _GuidedReLU6(nn.ReLU):
    """ReLU6 that Captum's guided backprop recognises (it only hooks nn.ReLU modules).

    The forward pass is exactly ReLU6; subclassing nn.ReLU is what makes Captum replace
    the backward pass with the guided rule (keep only positive gradients).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 6.0)


def guided_copy(model: nn.Module) -> nn.Module:
    """A deep copy of model whose nn.ReLU6 modules Captum's guided backprop can hook.

    Each nn.ReLU6 becomes a subclass of nn.ReLU with the same forward pass (clamp to
    [0, 6]), so the copy computes exactly the same outputs; model itself is unchanged.
    """
    guided = copy.deepcopy(check_model(model))
    for parent in guided.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, child_name, _GuidedReLU6())
    return guided


@_in_eval_mode
def guided_grad_cam(
    model: nn.Module,
    layer: nn.Module | str,
    x: torch.Tensor,
    target: int,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Guided Grad-CAM: guided backpropagation times the upsampled (ReLU) Grad-CAM map.

    x: (1, C, H, W). Guided backprop needs the activations as modules; nn.ReLU and
    nn.ReLU6 (MobileNetV2) both work, functional ReLUs are not guided. Returns (H, W):
    max over channels of the absolute value, normalised to [0, 1] (99th percentile).
    """
    model, x, target = _prepare(model, x, target)
    name, _ = resolve_layer(model, layer)
    guided = guided_copy(model)
    with warnings.catch_warnings():
        # Captum announces that it sets (and later removes) hooks on the ReLUs.
        warnings.filterwarnings("ignore", message=".*backward hooks.*")
        attributions = GuidedGradCam(guided, guided.get_submodule(name)).attribute(
            x, target=target, interpolate_mode="bilinear"
        )
    heat = attributions[0].abs().max(dim=0).values.detach().numpy()
    return normalize_map(heat, signed=False) if normalize else heat


@_in_eval_mode
def top_k(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[Prediction]:
    """The k most probable classes for x: (1, C, H, W), as Prediction(index, name, probability).

    Names are ImageNet's for a 1,000-class model, else "class <index>".
    """
    model = check_model(model)
    x = _check_input(x)
    probabilities = _class_scores(model, x).softmax(dim=1)[0]
    k = check_int("k", k, minimum=1)
    if k > probabilities.numel():
        raise ValueError(
            f"k must be at most the number of classes {probabilities.numel()}, got {k}"
        )
    names = imagenet_categories() if probabilities.numel() == 1000 else None
    values, indices = probabilities.topk(k)
    return [
        Prediction(int(i), names[i] if names else f"class {int(i)}", float(p))
        for p, i in zip(values, indices, strict=True)
    ]
