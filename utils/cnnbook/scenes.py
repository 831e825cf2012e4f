"""Seeded multi-object scenes on real textures, for detection and segmentation.

Each scene is a square colour image: a background cut from a real texture photo that ships
with scikit-image (brick, grass, gravel), with 1 to ``max_objects`` shapes on top (circle,
square, triangle), each filled with another tinted texture crop. Shapes have random sizes,
positions and rotations and may overlap: an object drawn later covers the ones drawn before
it, so each instance mask is the *visible* part of its object. Objects that end up almost
hidden are removed from the scene (they are not drawn), so every listed object can be seen.

Coordinates: pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)``. A box is the
tight continuous box of the visible mask, ``(x1, y1, x2, y2)`` with ``x2 = last column + 1``
(``torchvision.ops.masks_to_boxes`` reports the last column itself, one less).

Everything is vectorised NumPy over whole batches of scenes, and the same ``seed`` gives the
same scenes on every machine.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from cnnbook._checks import check_int
from cnnbook.photos import SAMPLE_PHOTOS, sample_photo, to_gray

__all__ = ["CLASSES", "TEXTURES", "Scenes", "SceneDataset", "make_scenes", "texture_credits"]

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")  # labels 1, 2, 3; 0 = background
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")

_CHUNK = 256  # scenes per vectorised block: bounds the temporary (chunk, M, H, W) arrays
_MIN_PIXELS = 6  # an object needs at least this many visible pixels to stay in the scene
_CLASS_HUES = np.array([0.0, 0.33, 0.62])  # red circles, green squares, blue triangles
_HUE_JITTER = 0.07  # +- this much around the class hue, with class_hues=True


@dataclass
class Scenes:
    """A batch of ``N`` generated scenes (``K_i`` objects in scene ``i``).

    images:    (N, 3, H, W) float32 in [0, 1]
    boxes:     list of N tensors (K_i, 4) float32, xyxy in pixels, tight around the masks
    labels:    list of N tensors (K_i,) int64 in 1..len(CLASSES), drawing order (last on top)
    masks:     list of N tensors (K_i, H, W) bool, visible part of each object
    semantic:  (N, H, W) int64, 0 for background, else the label of the visible object
    instances: (N, H, W) int64, 0 for background, else 1 + the object's index in scene i
    """

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    masks: list[torch.Tensor]
    semantic: torch.Tensor
    instances: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """torchvision-style detection targets: one dict {"boxes", "labels", "masks"} a scene."""
        return [
            {"boxes": b, "labels": lab, "masks": m}
            for b, lab, m in zip(self.boxes, self.labels, self.masks, strict=True)
        ]


class SceneDataset(torch.utils.data.Dataset):
    """A torch Dataset of ``(image (3, H, W), target dict)`` pairs from :class:`Scenes`.

    The target dict holds "boxes", "labels", "masks" and the scene's "semantic" map (H, W).
    Use ``collate_fn=lambda batch: tuple(zip(*batch))`` in a DataLoader, as for torchvision's
    detection models, because scenes hold different numbers of objects.
    """

    def __init__(self, scenes: Scenes) -> None:
        if not isinstance(scenes, Scenes):
            raise TypeError(f"scenes must be a Scenes, got {type(scenes).__name__}")
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s = self.scenes
        target = {
            "boxes": s.boxes[i],
            "labels": s.labels[i],
            "masks": s.masks[i],
            "semantic": s.semantic[i],
        }
        return s.images[i], target


def texture_credits(textures: tuple[str, ...] = TEXTURES) -> list[str]:
    """One credit line per texture photo used by the generator."""
    return [f"{name}: {SAMPLE_PHOTOS[name]}" for name in textures]


@functools.lru_cache(maxsize=8)
def _texture_bank(textures: tuple[str, ...]) -> np.ndarray:
    """(T, S, S) float32 grey textures, each stretched to [0, 1] by its 1st/99th percentile."""
    grey = [to_gray(sample_photo(name)) for name in textures]
    side = min(min(g.shape) for g in grey)
    bank = np.empty((len(grey), side, side), np.float32)
    for t, g in enumerate(grey):
        g = g[:side, :side]
        lo, hi = np.percentile(g, [1, 99])
        bank[t] = np.clip((g - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    bank.setflags(write=False)
    return bank


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs of any equal shape in [0, 1], output shape + (3,)."""
    n = np.array([5.0, 3.0, 1.0])
    k = (n + 6.0 * h[..., None]) % 6.0
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[..., None] * (1.0 - s[..., None] * ramp)


def _check_args(
    n: object,
    size: object,
    max_objects: object,
    min_objects: object,
    seed: object,
    scale: object,
    min_visible: object,
    textures: object,
) -> tuple[float, float]:
    check_int("n", n, minimum=1)
    check_int("size", size, minimum=16)
    if size > 256:  # type: ignore[operator]
        raise ValueError(f"size must be <= 256 (the textures are 512 pixels wide), got {size}")
    check_int("max_objects", max_objects, minimum=1)
    check_int("min_objects", min_objects, minimum=0)
    if min_objects > max_objects:  # type: ignore[operator]
        raise ValueError(f"min_objects must be <= max_objects, got {min_objects} > {max_objects}")
    check_int("seed", seed, minimum=0)
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise TypeError(f"scale must be a pair (low, high) of fractions of size, got {scale!r}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in scale):
        raise TypeError(f"scale must hold real numbers, got {scale!r}")
    low, high = float(scale[0]), float(scale[1])
    if not 0.05 <= low <= high <= 0.5:
        raise ValueError(f"scale must satisfy 0.05 <= low <= high <= 0.5, got {scale!r}")
    if isinstance(min_visible, bool) or not isinstance(min_visible, numbers.Real):
        raise TypeError(f"min_visible must be a real number, got {min_visible!r}")
    if not 0.0 <= min_visible < 1.0:
        raise ValueError(f"min_visible must be in [0, 1), got {min_visible}")
    if not isinstance(textures, tuple) or not all(isinstance(t, str) for t in textures):
        raise TypeError(f"textures must be a tuple of photo names, got {textures!r}")
    unknown = [t for t in textures if t not in SAMPLE_PHOTOS]
    if not textures or unknown:
        raise ValueError(f"textures must be names from SAMPLE_PHOTOS, got {textures!r}")
    return low, high


def _draw_params(rng: np.random.Generator, n: int, m: int, size: int, args: dict) -> dict:
    """All random choices for n scenes with m object slots (slot order = drawing order)."""
    low, high = args["scale"]
    n_tex = args["n_textures"]
    radius = rng.uniform(low, high, (n, m)) * size  # shape "radius" in pixels
    p = {
        "count": rng.integers(args["min_objects"], args["max_objects"] + 1, n),
        "label": rng.integers(1, len(CLASSES) + 1, (n, m)),
        "radius": radius,
        # centres keep at least half the radius inside the image, so objects are never lost
        "cx": 0.5 * radius + rng.uniform(0.0, 1.0, (n, m)) * (size - radius),
        "cy": 0.5 * radius + rng.uniform(0.0, 1.0, (n, m)) * (size - radius),
        "angle": rng.uniform(0.0, 2 * np.pi, (n, m)),
        # layer 0 is the background; layers 1..m are the objects
        "texture": rng.integers(0, n_tex, (n, m + 1)),
        "zoom": rng.integers(1, 3, (n, m + 1)),  # sample the texture every 1 or 2 pixels
        "hue": rng.uniform(0.0, 1.0, (n, m + 1)),
        "sat": np.concatenate(
            [rng.uniform(0.0, 0.3, (n, 1)), rng.uniform(0.45, 1.0, (n, m))], axis=1
        ),
        "val": np.concatenate(
            [rng.uniform(0.3, 0.75, (n, 1)), rng.uniform(0.55, 1.0, (n, m))], axis=1
        ),
        "u": rng.uniform(0.0, 1.0, (n, m + 1)),  # texture crop offsets, as fractions
        "v": rng.uniform(0.0, 1.0, (n, m + 1)),
    }
    # the options below reuse the draws above, so the random stream never depends on them
    if not args["rotate"]:
        p["angle"] = np.zeros((n, m))  # squares axis-aligned, triangles pointing up
    if args["class_hues"]:
        jitter = (p["hue"][:, 1:] - 0.5) * 2 * _HUE_JITTER
        p["hue"][:, 1:] = (_CLASS_HUES[p["label"] - 1] + jitter) % 1.0
    return p


def _half_planes(dx: np.ndarray, dy: np.ndarray, p: dict, normals: tuple, dist: float):
    """(k, H, W) bool: inside all half-planes n . (x, y) <= dist * radius (rotated normals).

    dx: (k, W), dy: (k, H) pixel-centre offsets from each centre. Each test is separable,
    a (k, 1, W) array compared with a (k, H, 1) one, so no full-size float array is built.
    """
    inside = None
    for phi in normals:
        theta = p["angle"] + phi
        a = np.cos(theta)[:, None].astype(np.float32)
        b = np.sin(theta)[:, None].astype(np.float32)
        limit = (dist * p["radius"])[:, None].astype(np.float32)
        test = (a * dx)[:, None, :] <= (limit - b * dy)[:, :, None]
        inside = test if inside is None else inside & test
    return inside


def _shape_masks(p: dict, size: int) -> np.ndarray:
    """(n, m, H, W) bool: the full (unoccluded) shape of every object slot."""
    n, m = p["label"].shape
    flat = {k: p[k].reshape(-1) for k in ("label", "radius", "cx", "cy", "angle")}
    centres = np.arange(size, dtype=np.float32) + 0.5
    out = np.empty((n * m, size, size), dtype=bool)
    for label in range(1, len(CLASSES) + 1):
        idx = np.flatnonzero(flat["label"] == label)
        q = {k: v[idx] for k, v in flat.items()}
        dx = centres[None, :] - q["cx"][:, None].astype(np.float32)  # (k, W)
        dy = centres[None, :] - q["cy"][:, None].astype(np.float32)  # (k, H)
        if label == 1:  # circle of radius r
            r2 = (q["radius"] ** 2)[:, None].astype(np.float32)
            out[idx] = (dx * dx)[:, None, :] <= (r2 - dy * dy)[:, :, None]
        elif label == 2:  # square of half-side 0.88 r: about the circle's area
            out[idx] = _half_planes(dx, dy, q, (0, np.pi / 2, np.pi, 3 * np.pi / 2), 0.88)
        else:  # equilateral triangle of circumradius 1.35 r: edges at distance 1.35 r / 2
            normals = (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)
            out[idx] = _half_planes(dx, dy, q, normals, 0.675)
    return out.reshape(n, m, size, size)


def _top_layer(shapes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(n, H, W) int32: 0 where no kept shape lies, else 1 + the last kept slot drawn there."""
    n, m = keep.shape
    top = np.zeros((n, *shapes.shape[2:]), dtype=np.int32)
    for j in range(m):  # later slots overwrite earlier ones: that is the occlusion
        drawn = shapes[:, j] & keep[:, j, None, None]
        np.copyto(top, j + 1, where=drawn)
    return top


def _layer_areas(top: np.ndarray, m: int) -> np.ndarray:
    """(n, m) visible pixel count of each object slot."""
    n = len(top)
    flat = top.reshape(n, -1) + (m + 1) * np.arange(n)[:, None]
    return np.bincount(flat.ravel(), minlength=n * (m + 1)).reshape(n, m + 1)[:, 1:]


def _paint(p: dict, pick: np.ndarray, bank: np.ndarray, image: np.ndarray) -> None:
    """Fill image (n, 3, H, W) float32: each pixel takes the tinted texture of its top layer.

    pick: (n, H, W) int32, flat index into the (n, m + 1) layer parameters of the layer on top
    at each pixel (layer 0 is the background).
    """
    n, size, _ = pick.shape
    side = bank.shape[1]

    zoom = p["zoom"]
    span = zoom * size
    oy = (p["u"] * (side - span)).astype(np.int64)  # crop origin inside the texture
    ox = (p["v"] * (side - span)).astype(np.int64)
    origin = ((p["texture"] * side + oy) * side + ox).astype(np.int32)  # crop origins, flat
    idx = np.arange(size, dtype=np.int32)
    step = idx[:, None] * side + idx[None, :]  # (H, W) flat offsets at zoom 1
    where = origin.ravel()[pick] + zoom.astype(np.int32).ravel()[pick] * step
    shade = bank.ravel()[where]  # (n, H, W) grey texture values in [0, 1]
    shade *= 0.65
    shade += 0.35  # keep some colour in the darkest texture pixels
    tint = _hsv_to_rgb(p["hue"], p["sat"], p["val"]).astype(np.float32)  # (n, m+1, 3)
    for c in range(3):
        np.multiply(tint[..., c].ravel()[pick], shade, out=image[:, c])


def _tight_boxes(visible: np.ndarray) -> np.ndarray:
    """(n, m, 4) float32 xyxy boxes of (n, m, H, W) masks (zeros for empty masks)."""
    size_y, size_x = visible.shape[-2:]
    cols = visible.any(axis=2)  # (n, m, W)
    rows = visible.any(axis=3)  # (n, m, H)
    x1 = cols.argmax(axis=2)
    x2 = size_x - cols[..., ::-1].argmax(axis=2)
    y1 = rows.argmax(axis=2)
    y2 = size_y - rows[..., ::-1].argmax(axis=2)
    return np.stack([x1, y1, x2, y2], axis=-1).astype(np.float32)


def _make_chunk(p: dict, size: int, bank: np.ndarray, min_visible: float, out: dict) -> dict:
    """Masks, occlusion, painting and boxes for one block of scenes.

    Fills the views out["images"] (n, 3, H, W), out["semantic"] and out["instances"] (n, H, W)
    and returns the kept-object flags (n, m), masks (K, H, W) and boxes (K, 4).
    """
    n, m = p["label"].shape
    shapes = _shape_masks(p, size)
    placed = np.arange(m)[None, :] < p["count"][:, None]  # (n, m)
    full_area = shapes.sum(axis=(2, 3))
    seen_area = _layer_areas(_top_layer(shapes, placed), m)
    keep = placed & (seen_area >= _MIN_PIXELS) & (seen_area >= min_visible * full_area)
    # nothing covers the last placed object: keep it if it covers any pixel, even if tiny
    last = np.arange(m)[None, :] == p["count"][:, None] - 1
    keep |= last & (seen_area > 0)
    # removing hidden objects only uncovers earlier ones, so one recomputation suffices
    top = _top_layer(shapes, keep)
    layer = np.arange(1, m + 1, dtype=np.int32)
    seen = top[:, None] == layer[None, :, None, None]  # (n, m, H, W) visible masks
    label_map = np.concatenate([np.zeros((n, 1), np.int64), p["label"]], axis=1)
    # instance ids count the kept objects of each scene in drawing order
    rank = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(keep, axis=1)], axis=1)
    pick = top + np.arange(0, n * (m + 1), m + 1, dtype=np.int32)[:, None, None]
    _paint(p, pick, bank, out["images"])
    np.take(label_map.ravel(), pick, out=out["semantic"])
    np.take(rank.ravel(), pick, out=out["instances"])
    return {"keep": keep, "masks": seen[keep], "boxes": _tight_boxes(seen)[keep]}


def make_scenes(
    n: int,
    *,
    size: int = 64,
    max_objects: int = 4,
    min_objects: int = 1,
    seed: int = 0,
    scale: tuple[float, float] = (0.1, 0.25),
    min_visible: float = 0.3,
    textures: tuple[str, ...] = TEXTURES,
    rotate: bool = True,
    class_hues: bool = False,
) -> Scenes:
    """Generate ``n`` seeded scenes of ``size x size`` pixels (see :class:`Scenes`).

    Each scene places between ``min_objects`` and ``max_objects`` objects (uniformly), whose
    "radius" is a uniform fraction ``scale`` of ``size``. An object keeps its place only if at
    least ``min_visible`` of its area stays visible (and a few pixels at least); the top
    object always stays, so ``min_objects >= 1`` means every scene holds an object (unless
    ``scale * size`` is so small, under a pixel, that a shape covers no pixel centre).
    ``textures`` are names from ``cnnbook.photos.SAMPLE_PHOTOS`` used as grey texture sources.
    ``rotate=False`` keeps squares axis-aligned and triangles pointing up. ``class_hues=True``
    tints each class in its own colour family (circles red, squares green, triangles blue,
    each with some jitter), so appearance as well as shape tells the classes apart, as in
    real scenes; otherwise every object gets a random colour and only its shape tells.
    The same arguments always give the same scenes.
    """
    low, high = _check_args(n, size, max_objects, min_objects, seed, scale, min_visible, textures)
    for name, flag in (("rotate", rotate), ("class_hues", class_hues)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    bank = _texture_bank(textures)
    if bank.shape[1] < 2 * size:
        raise ValueError(f"size must be at most half the smallest texture side, got {size}")
    rng = np.random.default_rng(seed)
    args = {
        "scale": (low, high),
        "n_textures": len(textures),
        "min_objects": min_objects,
        "max_objects": max_objects,
        "rotate": rotate,
        "class_hues": class_hues,
    }
    p = _draw_params(rng, n, max_objects, size, args)
    out = {
        "images": np.empty((n, 3, size, size), np.float32),
        "semantic": np.empty((n, size, size), np.int64),
        "instances": np.empty((n, size, size), np.int64),
    }
    chunks = []
    for start in range(0, n, _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in p.items()}
        views = {k: v[start : start + _CHUNK] for k, v in out.items()}
        chunks.append(_make_chunk(part, size, bank, float(min_visible), views))
    return _collect(chunks, p["label"], out)


def _collect(chunks: list[dict], label: np.ndarray, out: dict) -> Scenes:
    """Turn the per-chunk arrays into a :class:`Scenes` with per-scene tensors (views)."""
    keep = np.concatenate([c["keep"] for c in chunks])
    counts = keep.sum(axis=1).tolist()
    boxes = torch.from_numpy(np.concatenate([c["boxes"] for c in chunks]))
    masks = torch.from_numpy(np.concatenate([c["masks"] for c in chunks]))
    labels = torch.from_numpy(label[keep].astype(np.int64))
    return Scenes(
        images=torch.from_numpy(out["images"]),
        boxes=list(boxes.split(counts)),
        labels=list(labels.split(counts)),
        masks=list(masks.split(counts)),
        semantic=torch.from_numpy(out["semantic"]),
        instances=torch.from_numpy(out["instances"]),
    )
