"""Transfer learning: reuse a network pretrained on ImageNet for a new, small problem.

The pieces, in the order chapter 11 uses them:

- ``load_backbone``: a torchvision classifier with pretrained weights, loaded by
  ``cnnbook.pretrained.load_pretrained`` (SHA-256-verified, with a clear error when they
  are missing offline), optionally with a new head;
- ``head_name`` / ``replace_head`` / ``backbone_blocks``: where the head and the blocks are;
- ``freeze_backbone`` / ``unfreeze``: which parameters train (all, the head, the top k blocks);
- ``freeze_batchnorm`` / ``unfreeze_batchnorm``: BatchNorm layers that keep using (and
  never update) their ImageNet statistics while the rest of the model trains;
- ``param_groups``: optimizer groups with a lower, layer-wise decayed LR for the backbone;
- (``cnnbook.pretrained.imagenet_preprocess`` resizes and normalises images like ImageNet);
- ``feature_extractor`` / ``extract_features`` / ``fit_head``: train only a head on
  features computed once (the fast path when the backbone is frozen);
- ``image_folder`` / ``save_image_folder``: a reader's own images, one folder per class.

"Blocks" are the backbone's stages from input to output: the children of ``model.features``
when it exists (MobileNet, EfficientNet, MNASNet, VGG, ConvNeXt, DenseNet), else the
top-level children that hold parameters (ResNet: conv1, bn1, layer1 ... layer4). The head
is the model's last ``nn.Linear``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.hooks import RemovableHandle

from cnnbook._checks import check_bool, check_int
from cnnbook._torch_checks import eval_mode
from cnnbook.pretrained import imagenet_transform, load_pretrained

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


# --------------------------------------------------------------------------- loading


def _check_module(name: str, value: object) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def load_backbone(
    arch: str = "mobilenet_v2",
    weights: str | None = "IMAGENET1K_V1",
    *,
    num_classes: int | None = None,
    download: bool | None = None,
) -> nn.Module:
    """A torchvision classifier, pretrained (``weights``) or randomly initialised (None).

    Loaded by ``cnnbook.pretrained.load_pretrained`` (SHA-256-checked weight file, and an
    offline error saying which file to put where; see there for arch, weights, download).
    num_classes: if given, the 1000-class ImageNet head is replaced by a new linear layer
    with this many outputs (seeded, see ``replace_head``). The model is returned in
    training mode, on the CPU.
    """
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    model = load_pretrained(arch, weights, download=download)
    if num_classes is not None:
        replace_head(model, num_classes)
    return model


# --------------------------------------------------------------------------- head and blocks


def head_name(model: nn.Module) -> str:
    """Dotted name of the head, the model's last ``nn.Linear`` (e.g. "classifier.1", "fc")."""
    model = _check_module("model", model)
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names or names[-1] == "":
        raise ValueError("model must contain an nn.Linear head below its top level")
    return names[-1]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_head(model: nn.Module, head: int | nn.Module, *, seed: int = 0) -> nn.Module:
    """Swap the model's head for ``head`` (a module) or a new ``nn.Linear`` with ``head`` outputs.

    The new linear layer takes the old one's ``in_features`` and is initialised from
    ``seed`` without touching the global RNG. The model is changed in place and returned.
    """
    model = _check_module("model", model)
    seed = check_int("seed", seed, minimum=0)
    name = head_name(model)
    if isinstance(head, nn.Module):
        new = head
    else:
        num_classes = check_int("head", head, minimum=1)
        old = model.get_submodule(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            new = nn.Linear(old.in_features, num_classes)
        new.to(old.weight.device)
    _set_submodule(model, name, new)
    return model


def _head_top(model: nn.Module) -> str:
    return head_name(model).split(".")[0]


def backbone_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's blocks, input side first, as ``(dotted name, module)`` pairs.

    The children of ``model.features`` if it is an ``nn.Sequential``, else the top-level
    children with parameters, except the one holding the head.
    """
    model = _check_module("model", model)
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return [(f"features.{name}", block) for name, block in features.named_children()]
    head_top = _head_top(model)
    return [
        (name, child)
        for name, child in model.named_children()
        if name != head_top and any(True for _ in child.parameters())
    ]


# --------------------------------------------------------------------------- BatchNorm


# Public BatchNorm classes (the lazy variants subclass these); InstanceNorm is not one.
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
# Attribute of a frozen layer: its hook's handle, and whether the affine parameters froze.
_FROZEN = "_cnnbook_frozen_batchnorm"


@dataclass
class _Frozen:
    handle: RemovableHandle  # deepcopy copies it onto the copy's own hook (same id)
    affine: bool = False


def _stay_in_eval(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: ``model.train()`` sets every layer to training mode (``fit`` calls
    it each epoch); resetting the flag right before each call keeps this layer in eval
    mode, so it normalises with its running statistics and never updates them."""
    module.training = False


def _batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, BATCHNORM_TYPES)]


def freeze_batchnorm(module: nn.Module, *, affine: bool = False) -> int:
    """Keep every BatchNorm layer in ``module`` in eval mode, even inside a training model.

    They normalise with their stored (e.g. ImageNet) running mean and variance and do not
    update them. affine: also freeze their scale and shift (gamma, beta). Returns the
    number of BatchNorm layers. Undo with ``unfreeze_batchnorm``. Each layer keeps the
    handle of its hook, so a ``copy.deepcopy`` of the model stays frozen and is undone
    on its own.
    """
    module = _check_module("module", module)
    check_bool("affine", affine)
    layers = _batchnorms(module)
    for bn in layers:
        state = getattr(bn, _FROZEN, None)
        if state is None:
            state = _Frozen(bn.register_forward_pre_hook(_stay_in_eval))
            setattr(bn, _FROZEN, state)
        bn.training = False
        if affine:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(False)
            state.affine = True  # so that unfreeze_batchnorm restores only these
    return len(layers)


def unfreeze_batchnorm(module: nn.Module) -> int:
    """Undo ``freeze_batchnorm``: BatchNorm layers follow the model's train/eval mode again
    (and affine parameters frozen by it train again). Returns the number of layers changed."""
    module = _check_module("module", module)
    changed = 0
    for bn in _batchnorms(module):
        state = getattr(bn, _FROZEN, None)
        if state is None:
            continue
        state.handle.remove()
        delattr(bn, _FROZEN)
        if state.affine:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(True)
        bn.training = module.training
        changed += 1
    return changed


def is_batchnorm_frozen(module: nn.Module) -> bool:
    """True if ``module`` is a BatchNorm layer held in eval mode by ``freeze_batchnorm``."""
    _check_module("module", module)
    return isinstance(module, BATCHNORM_TYPES) and getattr(module, _FROZEN, None) is not None


# --------------------------------------------------------------------------- freezing


def count_trainable(model: nn.Module) -> int:
    """Number of parameters (numbers, not tensors) with ``requires_grad=True``."""
    model = _check_module("model", model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze_backbone(model: nn.Module, *, top_blocks: int = 0, batchnorm: bool = True) -> int:
    """Freeze everything except the head and the top ``top_blocks`` backbone blocks.

    Frozen parameters get ``requires_grad=False`` (no gradient, no update). batchnorm: also
    hold the BatchNorm layers of the frozen blocks in eval mode (``freeze_batchnorm``):
    ``requires_grad=False`` alone does not stop a layer in training mode from updating its
    running statistics. Trainable blocks' BatchNorm layers are released. Returns the
    number of trainable parameters.
    """
    model = _check_module("model", model)
    blocks = backbone_blocks(model)
    top_blocks = check_int("top_blocks", top_blocks, minimum=0)
    if top_blocks > len(blocks):
        raise ValueError(
            f"top_blocks must be <= {len(blocks)} (the backbone's blocks), got {top_blocks}"
        )
    check_bool("batchnorm", batchnorm)
    model.requires_grad_(False)
    unfreeze_batchnorm(model)
    n_frozen = len(blocks) - top_blocks
    for _, block in blocks[n_frozen:]:
        block.requires_grad_(True)
    model.get_submodule(head_name(model)).requires_grad_(True)
    if batchnorm:
        for _, block in blocks[:n_frozen]:
            freeze_batchnorm(block)
    return count_trainable(model)


def unfreeze(model: nn.Module) -> int:
    """Make every parameter trainable and release frozen BatchNorm layers; returns the count."""
    model = _check_module("model", model)
    unfreeze_batchnorm(model)
    model.requires_grad_(True)
    return count_trainable(model)


# --------------------------------------------------------------------------- learning rates


def param_groups(
    model: nn.Module, *, head_lr: float, backbone_lr: float, layer_decay: float = 1.0
) -> list[dict]:
    """Optimizer parameter groups: the head at ``head_lr``, the backbone lower and decaying.

    The top backbone block gets ``backbone_lr``, the block below it ``backbone_lr *
    layer_decay``, and so on down to the first block (layer-wise LR decay: early layers
    hold general features, so they move least). Parameters in neither (e.g. ConvNeXt's
    final norm) get ``backbone_lr``. Frozen parameters are left out, and so are empty
    groups. Each group is ``{"params", "lr", "name"}``; pass the list to any optimizer.
    """
    model = _check_module("model", model)
    head_lr = _check_positive("head_lr", head_lr)
    backbone_lr = _check_positive("backbone_lr", backbone_lr)
    layer_decay = _check_positive("layer_decay", layer_decay)
    if layer_decay > 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    seen: set[int] = set()

    def take(module: nn.Module) -> list[nn.Parameter]:
        params = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        return params

    name = head_name(model)
    groups = [{"params": take(model.get_submodule(name)), "lr": head_lr, "name": name}]
    for depth, (block_name, block) in enumerate(reversed(backbone_blocks(model))):
        lr = backbone_lr * layer_decay**depth
        groups.append({"params": take(block), "lr": lr, "name": block_name})
    groups.append({"params": take(model), "lr": backbone_lr, "name": "other"})
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------- frozen features


def feature_extractor(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` whose head is ``nn.Identity``: images -> (N, D) features.

    In eval mode, with ``requires_grad=False``; the original model is not changed.
    """
    model = _check_module("model", model)
    extractor = copy.deepcopy(model)
    _set_submodule(extractor, head_name(extractor), nn.Identity())
    extractor.requires_grad_(False)
    return extractor.eval()


def extract_features(module: nn.Module, X: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Run ``module`` over X: (N, ...) in batches, in eval mode, without gradients.

    Returns the outputs (N, ...) concatenated on the CPU. Computing them once and training
    a head on them is what makes a frozen backbone cheap: each image passes through the
    backbone once instead of once per epoch.
    """
    module = _check_module("module", module)
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"X must hold at least one sample, got shape {tuple(X.shape)}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    with eval_mode(module), torch.no_grad():
        outputs = [
            module(X[i : i + batch_size].to(device)).cpu() for i in range(0, X.shape[0], batch_size)
        ]
    return torch.cat(outputs)


def _check_xy(name: str, data: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{name} must be an (X, y) pair of tensors, got {type(data).__name__}")
    X, y = data
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"{name} must be an (X, y) pair of tensors")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X and y differ in length ({X.shape[0]} and {y.shape[0]})")
    return X, y


def fit_head(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    val_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> object:
    """Feature extraction in one call: train only the head of ``model`` on frozen features.

    train_data, val_data: (X, y) with X (N, 3, H, W) preprocessed images. The backbone
    (a frozen copy, ``feature_extractor``) turns them into features once; then the
    model's own head trains on them with AdamW for ``epochs`` epochs. The head is
    updated in place, so afterwards ``model`` classifies images. Returns the History.
    """
    from cnnbook.train import fit  # here: train imports matplotlib helpers lazily anyway

    model = _check_module("model", model)
    X, y = _check_xy("train_data", train_data)
    _check_positive("lr", lr)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float):
        raise TypeError(f"weight_decay must be a number, got {weight_decay!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    extractor = feature_extractor(model)
    features_val = None
    if val_data is not None:
        X_val, y_val = _check_xy("val_data", val_data)
        features_val = (extract_features(extractor, X_val), y_val)
    features = (extract_features(extractor, X), y)
    head = model.get_submodule(head_name(model))
    head.requires_grad_(True)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    return fit(
        head,
        features,
        features_val,
        epochs=epochs,
        optimizer=optimizer,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        device=next(head.parameters()).device,
    )


# --------------------------------------------------------------------------- your own images


def image_folder(root: str | os.PathLike, size: int | Sequence[int]) -> object:
    """A reader's own images as ``torchvision.datasets.ImageFolder``, ready for a pretrained net.

    root: a folder with one sub-folder per class (``root/cat/1.jpg``, ``root/dog/7.png``);
    the sorted folder names become ``.classes`` and the labels 0, 1, ...
    size: passed to ``imagenet_transform``; items are ((3, H, W) float32, int label).
    ``cnnbook.data.as_tensors(dataset)`` turns a small folder into two tensors.
    """
    if not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be an existing folder, got {root}")
    transform = imagenet_transform(size)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise ValueError(f"root must hold one sub-folder per class, but {root} has no sub-folders")
    empty = [
        name
        for name in classes
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in (root / name).iterdir())
    ]
    if empty:
        raise ValueError(
            f"root: the class folder(s) {empty} in {root} hold no images "
            f"(accepted endings: {', '.join(IMAGE_SUFFIXES)})"
        )
    return torchvision.datasets.ImageFolder(str(root), transform=transform)


def save_image_folder(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    root: str | os.PathLike,
    classes: Sequence[str],
) -> Path:
    """Write images as PNG files ``root/<class name>/<index>.png`` (an ImageFolder layout).

    images: (N, 3, H, W) or (N, 1, H, W), float in [0, 1] or uint8. labels: (N,) ints
    indexing ``classes``. Handy to try ``image_folder`` without data of your own.
    Returns ``root``.
    """
    from PIL import Image

    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 3 or 1, H, W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if not isinstance(classes, Sequence) or isinstance(classes, str):
        raise TypeError(f"classes must be a list of folder names, got {type(classes).__name__}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must lie in 0..{len(classes) - 1} (one per class name)")
    if not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    root = Path(root)
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) for PIL
    for i, (array, label) in enumerate(zip(pixels, labels.tolist(), strict=True)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
            folder / f"{i:05d}.png"
        )
    return root
