"""Plotting helpers that several chapters repeat, so a plotting cell can stay a few lines.

- ``annotated_grid``: a 2-D array drawn as coloured cells with its numbers written in them
  (kernels, confusion matrices, small feature maps).
- ``image_grid``: a row or grid of images with titles; ``feature_maps``: the channels of
  one (C, H, W) activation on one shared colour scale.
- ``overlay``: a heat map (attribution, activation) over a photo.
- ``history_curves``: loss and accuracy per epoch of one or several training runs.
- ``draw_boxes``: xyxy boxes on an image axis, in the pixel-centre convention of imshow.
- ``book_figures``: text sizes for the 6.8 in text column and sharp inline figures; every
  chapter's setup cell calls it. ``show_photos``: a figure of photographs as a sharp JPEG.

Every function draws on a given Axes (or makes a new figure) and returns what it drew on,
so a chapter can add titles or marks afterwards. Colormaps are colour-blind safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from cnnbook._checks import check_array, check_bool, check_int
from cnnbook.diagrams.style import MAX_WIDTH_IN
from cnnbook.photos import photo_as_float, to_gray

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
# Ten classes (digits, Fashion-MNIST): Paul Tol's nine muted colours plus a dark grey.
TOL_MUTED = tuple(
    "#332288 #88CCEE #44AA99 #117733 #999933 #DDCC77 #CC6677 #882255 #AA4499 #555555".split()
)


# Text sizes (points) for figures as wide as the text column: a 6.8 in figure fills the
# 688 px column, so 8 pt is about 11 screen pixels, and four panels' titles fit side by side.
BOOK_TEXT_SIZES = {
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 11,
}


def book_figures(*, photos: bool = False) -> None:
    """Figures for the book's text column (``MAX_WIDTH_IN``), sharp on any screen.

    Sets ``BOOK_TEXT_SIZES`` in matplotlib's rcParams and, in IPython, the inline figure
    format: "retina" PNG (twice the pixels, shown at the figure's size), or with
    ``photos=True`` JPEG at 150 dpi, which keeps pages of photographs light.
    """
    check_bool("photos", photos)
    plt.rcParams.update(BOOK_TEXT_SIZES)
    from IPython import get_ipython  # here: the library also runs outside IPython

    if get_ipython() is None:
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    if photos:
        plt.rcParams["figure.dpi"] = 150
        set_matplotlib_formats("jpeg")
    else:
        set_matplotlib_formats("retina")


def show_photos(fig: object, *, quality: int = 85) -> None:
    """Show ``fig`` (a figure of photographs) as a JPEG at twice its pixels, then close it.

    A retina PNG of photographs weighs about a megabyte; the same figure as JPEG, about a
    fifth. The image is shown at the figure's size, like the book's other figures.
    quality: JPEG quality, 1-95.
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    quality = check_int("quality", quality, minimum=1)
    if quality > 95:
        raise ValueError(f"quality must be at most 95, got {quality}")
    import io

    from IPython.display import Image, display
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    fig.savefig(
        buffer, format="jpeg", dpi=2 * fig.dpi, bbox_inches="tight", pil_kwargs={"quality": quality}
    )
    plt.close(fig)
    width = PILImage.open(io.BytesIO(buffer.getvalue())).size[0] // 2
    display(Image(data=buffer.getvalue(), format="jpeg", width=width))


def _axes(ax: object, figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _numpy(name: str, value: object) -> np.ndarray:
    """An array from a numpy array or a (CPU, detached) torch tensor, without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    return check_array(name, value)


def _image(name: str, image: object) -> np.ndarray:
    """(H, W), (H, W, 3) or channels-first (1|3, H, W) -> (H, W) or (H, W, 3)."""
    a = _numpy(name, image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"{name} must be (H, W), (H, W, 3) or (3, H, W), got {a.shape}")
    return a


def annotated_grid(
    values: object,
    ax: Axes | None = None,
    *,
    text: object = None,
    fmt: str = "{:g}",
    cmap: str = "cividis",
    vmin: float | None = None,
    vmax: float | None = None,
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    colorbar: str | None = None,
    title: str | None = None,
    fontsize: float = 9,
) -> Axes:
    """Draw values: (rows, cols) as coloured cells, each with its number written in it.

    text: (rows, cols) numbers (or strings) to write instead of ``values``; fmt formats
    each number. Each number is written in black or white, whichever reads better on its
    cell's colour. xticklabels / yticklabels name the columns / rows (no ticks when None);
    colorbar: the colour bar's label (no colour bar when None). Returns the Axes.
    """
    grid = _numpy("values", values).astype(float)
    if grid.ndim != 2:
        raise ValueError(f"values must have 2 dimensions, got shape {grid.shape}")
    shown = grid if text is None else np.asarray(_numpy_or_text(text))
    if shown.shape != grid.shape:
        raise ValueError(f"text must have the shape of values {grid.shape}, got {shown.shape}")
    if not isinstance(fmt, str) or "{" not in fmt:
        raise TypeError(f"fmt must be a format string such as '{{:.2f}}', got {fmt!r}")
    for name, labels, n in (
        ("xticklabels", xticklabels, grid.shape[1]),
        ("yticklabels", yticklabels, grid.shape[0]),
    ):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name} must name all {n} cells along its axis, got {len(labels)}")
    ax = _axes(ax, (0.5 * grid.shape[1] + 1.5, 0.5 * grid.shape[0] + 1))
    norm = Normalize(
        np.nanmin(grid) if vmin is None else vmin, np.nanmax(grid) if vmax is None else vmax
    )
    image = ax.imshow(grid, cmap=cmap, norm=norm)
    colours = plt.get_cmap(cmap)(norm(grid))
    luma = colours[..., :3] @ np.array([0.299, 0.587, 0.114])
    for (r, c), value in np.ndenumerate(shown):
        label = value if isinstance(value, str) else fmt.format(value)
        colour = "black" if luma[r, c] > 0.5 else "white"
        ax.text(c, r, label, ha="center", va="center", fontsize=fontsize, color=colour)
    if xticklabels is None:
        ax.set_xticks([])
    else:
        ax.set_xticks(np.arange(grid.shape[1]), xticklabels, rotation=45, ha="right")
    if yticklabels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(np.arange(grid.shape[0]), yticklabels)
    if colorbar is not None:
        ax.figure.colorbar(image, ax=ax, label=colorbar)
    if title is not None:
        ax.set_title(title)
    return ax


def _numpy_or_text(value: object) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def image_grid(
    images: object,
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    size: float = 2.0,
    suptitle: str | None = None,
) -> np.ndarray:
    """Draw images (a sequence or an (N, ...) array/tensor) in a grid, one per panel.

    Each image is (H, W), (H, W, 3) or channels-first (1 or 3, H, W), numbers in [0, 1]
    or uint8; grey images use ``cmap``, vmin and vmax. titles: one per image. ncols:
    panels per row (default: all in one row, at most 8). size: inches per panel, at most:
    panels shrink so that the grid fits the text column (``MAX_WIDTH_IN``).
    Returns the (rows, cols) array of Axes; unused panels are hidden.
    """
    if isinstance(images, np.ndarray) or hasattr(images, "detach"):
        images = list(_numpy("images", images))
    if not isinstance(images, Sequence) or len(images) == 0:
        raise ValueError("images must be a non-empty sequence or array of images")
    pictures = [_image(f"images[{i}]", image) for i, image in enumerate(images)]
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(
            f"titles must have one entry per image ({len(pictures)}), got {len(titles)}"
        )
    ncols = min(len(pictures), 8) if ncols is None else check_int("ncols", ncols, minimum=1)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        raise ValueError(f"size must be a positive number of inches, got {size!r}")
    nrows = math.ceil(len(pictures) / ncols)
    size = min(size, MAX_WIDTH_IN / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows + 0.4 * bool(suptitle)),
        squeeze=False,
        layout="constrained",
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(pictures):
            ax.imshow(pictures[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return axes


def feature_maps(
    maps: object,
    *,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    size: float = 1.5,
    suptitle: str | None = None,
) -> np.ndarray:
    """Draw every channel of maps: (C, H, W) on one colour scale shared by all channels.

    Signed maps use "RdBu_r" centred on zero (red positive, blue negative); maps >= 0
    use "viridis" from 0. titles default to "channel c". Returns the Axes array.
    """
    a = _numpy("maps", maps).astype(float)
    if a.ndim != 3:
        raise ValueError(f"maps must be (C, H, W), got shape {a.shape}")
    top = float(np.abs(a).max()) or 1.0
    signed = bool(a.min() < 0)
    titles = [f"channel {c}" for c in range(len(a))] if titles is None else titles
    return image_grid(
        list(a),
        titles,
        ncols=min(ncols, len(a)),
        size=size,
        suptitle=suptitle,
        cmap="RdBu_r" if signed else "viridis",
        vmin=-top if signed else 0.0,
        vmax=top,
    )


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    ax: Axes | None = None,
    *,
    alpha: float = 0.5,
    cmap: str | None = None,
    title: str | None = None,
    colorbar: bool = True,
    gray_photo: bool = True,
) -> Axes:
    """Draw heatmap: (H, W) over image: (H, W) or (H, W, 3) (uint8 or floats in [0, 1]).

    The photo is drawn in grey by default so the map's colours read unambiguously. The
    colormap is colour-blind safe: "inferno" for maps >= 0, "RdBu_r" centred on zero with
    symmetric limits for signed maps (unless ``cmap`` is given). alpha: opacity of the map.
    Returns the Axes (a new figure when ax is None).
    """
    photo = photo_as_float(image)
    heat = check_array("heatmap", heatmap, ndim=2).astype(np.float32)
    if heat.shape != photo.shape[:2]:
        raise ValueError(
            f"heatmap has shape {heat.shape} but image is {photo.shape[:2]}: draw on the "
            "photo the model saw (e.g. square_photo(image))"
        )
    if not np.all(np.isfinite(heat)):
        raise ValueError("heatmap must hold finite values")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    check_bool("colorbar", colorbar)
    check_bool("gray_photo", gray_photo)
    ax = _axes(ax, (4.5, 4))
    if gray_photo:
        photo = to_gray(photo)
    ax.imshow(photo, cmap="gray" if photo.ndim == 2 else None, vmin=0, vmax=1)
    top = float(np.abs(heat).max()) or 1.0
    if heat.min() < 0:
        shown = ax.imshow(heat, cmap=cmap or "RdBu_r", alpha=alpha, vmin=-top, vmax=top)
    else:
        shown = ax.imshow(heat, cmap=cmap or "inferno", alpha=alpha, vmin=0, vmax=top)
    if colorbar:
        bar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label("attribution", fontsize="small")
        bar.ax.tick_params(labelsize="small")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize="medium")  # panels share a 6.8 in column
    return ax


_CURVES = ("train_loss", "train_acc", "val_loss", "val_acc")


def _curves(name: str, run: object) -> dict[str, list[float]]:
    """The four per-epoch lists of a History (``fit``'s result) or of a dict."""
    get = run.get if isinstance(run, Mapping) else lambda key: getattr(run, key, None)
    curves = {key: list(get(key) or []) for key in _CURVES}
    if not curves["train_loss"]:
        raise ValueError(f"histories[{name!r}] has no train_loss values: nothing to plot")
    return curves


def history_curves(histories: object, ax: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """Loss (left) and accuracy (right) per epoch, train solid and validation dashed.

    histories: one History from ``fit`` (or a dict with train_loss, train_acc, val_loss,
    val_acc lists), or a mapping {run name: history} to compare runs, one colour each.
    ax: two Axes, or None for a new figure as wide as the text column. Returns the two Axes.
    """
    one_run = not isinstance(histories, Mapping) or "train_loss" in histories
    runs = {"": histories} if one_run else histories
    if not runs:
        raise ValueError("histories must hold at least one run")
    if len(runs) > len(OKABE_ITO):
        raise ValueError(f"histories can compare at most {len(OKABE_ITO)} runs, got {len(runs)}")
    curves = {name: _curves(name, run) for name, run in runs.items()}
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.2), layout="constrained")
    if len(ax) != 2 or not all(isinstance(a, Axes) for a in ax):
        raise ValueError("ax must be two matplotlib Axes (loss, accuracy)")
    for (name, run), colour in zip(curves.items(), OKABE_ITO, strict=False):
        prefix = f"{name}, " if name else ""
        for axis, key in zip(ax, ("loss", "acc"), strict=True):
            for split, style, word in (("train", "-", "train"), ("val", "--", "validation")):
                values = run[f"{split}_{key}"]
                if values:
                    epochs = np.arange(1, len(values) + 1)
                    axis.plot(epochs, values, style, color=colour, label=prefix + word)
    ax[0].set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax[1].set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axis in ax:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return ax


def draw_boxes(
    ax: Axes,
    boxes: object,
    labels: object = None,
    *,
    colours: Mapping[int, str] | str = "white",
    names: Mapping[int, str] | None = None,
    scores: object = None,
    style: str = "-",
    lw: float = 1.5,
) -> Axes:
    """Outline boxes: (K, 4) xyxy in pixels on an image Axes drawn with imshow.

    imshow centres pixel (r, c) on (c, r), so a box that covers pixels x1..x2-1 is drawn
    from x1 - 0.5 to x2 - 0.5. labels: (K,) class ids that pick each box's colour from
    ``colours`` (a mapping, or one colour for all); names: {class id: name} writes the
    name (and the score, if scores: (K,) is given) above each box. Returns the Axes.
    """
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    xyxy = _numpy("boxes", boxes)
    if xyxy.size == 0:
        xyxy = xyxy.reshape(0, 4)  # no boxes: nothing to draw, whatever the empty shape
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"boxes must be (K, 4) xyxy, got shape {xyxy.shape}")
    ids = None if labels is None else _numpy("labels", labels).astype(int).ravel()
    if ids is not None and len(ids) != len(xyxy):
        raise ValueError(f"labels must have one entry per box ({len(xyxy)}), got {len(ids)}")
    if (ids is None) and (not isinstance(colours, str) or names is not None):
        raise ValueError("labels are needed to pick colours or names by class")
    marks = None if scores is None else _numpy("scores", scores).ravel()
    if marks is not None and len(marks) != len(xyxy):
        raise ValueError(f"scores must have one entry per box ({len(xyxy)}), got {len(marks)}")
    for k, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        colour = colours if isinstance(colours, str) else colours[int(ids[k])]
        ax.add_patch(
            Rectangle(
                (x1 - 0.5, y1 - 0.5),
                x2 - x1,
                y2 - y1,
                fill=False,
                edgecolor=colour,
                linewidth=lw,
                linestyle=style,
            )
        )
        if names is not None:
            caption = names[int(ids[k])] + ("" if marks is None else f" {marks[k]:.2f}")
            ax.text(x1 - 0.5, y1 - 1.5, caption, color=colour, fontsize=7)
    return ax
