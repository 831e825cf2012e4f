"""Real photos that ship with scikit-image and scikit-learn, and small helpers for them.

Everything here works offline; only ``square_photo`` needs torch (imported when called),
so the widgets can use the rest cheaply.
``cnnbook.data`` re-exports these names, so chapters can load photos and datasets from
one place.
"""

from __future__ import annotations

import numpy as np

from cnnbook._checks import check_array, check_int, check_pair

SAMPLE_PHOTOS: dict[str, str] = {
    "astronaut": "Astronaut Eileen Collins; NASA Great Images database, public domain "
    "(scikit-image).",
    "camera": "Photographer with a camera; Lav Varshney, CC0 (scikit-image).",
    "chelsea": "Chelsea the cat; Stefan van der Walt, CC0 (scikit-image).",
    "coffee": "Coffee cup, courtesy of Pikolo Espresso Bar; Rachel Michetti, CC0 (scikit-image).",
    "rocket": "Falcon 9 launching DSCOVR; SpaceX, public domain (scikit-image).",
    "coins": "Greek coins from Pompeii; Brooklyn Museum Collection, no known copyright "
    "restrictions (scikit-image).",
    "brick": "Brick wall texture; CC0Textures (Bricks25), CC0 (scikit-image).",
    "grass": "Grass texture; linolafett on DeviantArt, CC0 (scikit-image).",
    "gravel": "Gravel texture; CC0Textures (Gravel04), CC0 (scikit-image).",
    "hubble_deep_field": "Hubble eXtreme Deep Field; NASA, public domain (scikit-image).",
    "retina": "Fundus photograph of a normal left eye; Mikael Haggstrom, CC0 (scikit-image).",
    "immunohistochemistry": "Colonic glands, IHC staining; Center for Microscopy and "
    "Molecular Imaging, no known copyright restrictions (scikit-image).",
    "clock": "Motion-blurred wall clock; Stefan van der Walt, public domain (scikit-image).",
    "china": "china.jpg by danielbuechele on Flickr (flickr.com/photos/danielbuechele/"
    "6061409035), CC BY 2.0 (scikit-learn).",
    "flower": "flower.jpg by vultilion on Flickr (flickr.com/photos/vultilion/6056698931), "
    "CC BY 2.0 (scikit-learn).",
}
_SKLEARN_PHOTOS = ("china", "flower")

# ITU-R 601-2 luma weights (R, G, B), the same as PIL's convert("L").
_LUMA_601 = np.array([0.299, 0.587, 0.114])


def sample_photo(name: str) -> np.ndarray:
    """A real photo bundled with scikit-image or scikit-learn; works offline.

    Returns ``(H, W, 3)`` uint8 for colour photos and ``(H, W)`` uint8 for grey ones
    (camera, coins, brick, grass, gravel, clock). ``SAMPLE_PHOTOS[name]`` is its credit
    and licence; china and flower are CC BY 2.0 and must be credited where shown.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"name must be one of {', '.join(SAMPLE_PHOTOS)}; got {name!r}")
    if name in _SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image  # slow import, see load_digits

        image = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        image = getattr(skimage.data, name)()
    return np.ascontiguousarray(image, dtype=np.uint8)


def photo_as_float(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Validate a photo and scale it to floats.

    image: (H, W) or (H, W, 3), integers in [0, 255] or floats in [0, 1]; errors name
    it ``name``. Returns the same shape as float64 in [0, 1].
    """
    image = check_array(name, image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 3), got {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        if image.size and (image.min() < 0 or image.max() > 255):
            raise ValueError(f"{name} of integer dtype must hold values in [0, 255]")
        return image / 255.0
    if not np.all(np.isfinite(image)) or (image.size and (image.min() < 0 or image.max() > 1)):
        raise ValueError(f"{name} of float dtype must hold finite values in [0, 1]")
    return image.astype(np.float64)


def square_photo(image: np.ndarray, size: int = 224) -> np.ndarray:
    """The largest centred square of a photo, resized (bilinear, antialiased) to size x size.

    image: (H, W) or (H, W, 3), uint8 or floats in [0, 1]; grey becomes three equal
    channels. Returns (size, size, 3) float32 in [0, 1]: for a network, exactly the
    picture it sees (so draw attribution maps on this one).
    """
    import torch  # here: the rest of this module works without torch
    import torch.nn.functional as F

    photo = photo_as_float(image).astype(np.float32)
    size = check_int("size", size, minimum=8)
    H, W = photo.shape[:2]
    if H < 1 or W < 1:
        raise ValueError(f"image must not be empty, got shape {photo.shape}")
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    side = min(H, W)
    top, left = (H - side) // 2, (W - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(photo[top : top + side, left : left + side]))
    crop = crop.permute(2, 0, 1)[None]  # (1, 3, side, side)
    resized = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)
    return resized[0].permute(1, 2, 0).clamp(0, 1).numpy()


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey levels of a photo by ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B).

    image: (H, W) or (H, W, 3), integers in [0, 255] or floats in [0, 1].
    Returns (H, W) float64 in [0, 1].
    """
    values = photo_as_float(image)
    gray = values if values.ndim == 2 else values @ _LUMA_601
    return np.clip(gray, 0.0, 1.0)  # the weights sum to 1 only up to rounding


def crop_patch(image: np.ndarray, top: int, left: int, size: int | tuple[int, int]) -> np.ndarray:
    """A copy of ``image[top:top + h, left:left + w]``, with (h, w) = size (int: square).

    image: (H, W) or (H, W, C). Returns (h, w) or (h, w, C), same dtype.
    """
    image = check_array("image", image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    top = check_int("top", top, minimum=0)
    left = check_int("left", left, minimum=0)
    h, w = check_pair("size", size, minimum=1)
    H, W = image.shape[:2]
    if top + h > H:
        raise ValueError(f"top + size = {top} + {h} exceeds the image height {H}")
    if left + w > W:
        raise ValueError(f"left + size = {left} + {w} exceeds the image width {W}")
    return image[top : top + h, left : left + w].copy()
