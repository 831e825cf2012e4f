"""cnnbook.viz: what each helper draws (read back from the Axes) and the arguments it refuses."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from cnnbook.history import History
from cnnbook.viz import (
    OKABE_ITO,
    TOL_MUTED,
    annotated_grid,
    draw_boxes,
    feature_maps,
    history_curves,
    image_grid,
    overlay,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- annotated_grid


def test_annotated_grid_writes_every_number_in_its_cell():
    values = np.array([[0, 5, 10], [20, 1, 3]])
    ax = annotated_grid(values, xticklabels=["a", "b", "c"], yticklabels=["r0", "r1"])
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert texts == {((c, r), f"{values[r, c]:g}") for r in range(2) for c in range(3)}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    # cividis is dark at its low end and light at its high end: white text, then black
    colour = {t.get_text(): t.get_color() for t in ax.texts}
    assert colour["0"] == "white" and colour["20"] == "black"
    assert ax.images[0].get_clim() == (0, 20)


def test_annotated_grid_text_format_limits_and_colorbar():
    _, ax = plt.subplots()
    kernel = torch.tensor([[-1.0, 0.0], [0.5, 1.0]])
    out = annotated_grid(kernel, ax, fmt="{:+.1f}", cmap="RdBu_r", vmin=-2, vmax=2, colorbar="w")
    assert out is ax and len(ax.figure.axes) == 2, "the grid and its colour bar"
    assert sorted(t.get_text() for t in ax.texts) == ["+0.0", "+0.5", "+1.0", "-1.0"]
    assert ax.images[0].get_clim() == (-2, 2)
    shown = annotated_grid(np.eye(2), text=[["x", "y"], ["z", "w"]], title="t")
    assert {t.get_text() for t in shown.texts} == {"x", "y", "z", "w"}
    assert shown.get_title() == "t"


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"values": np.zeros(3)}, ValueError, "values"),
        ({"values": "grid"}, TypeError, "values"),
        ({"values": np.zeros((2, 2)), "text": np.zeros((3, 2))}, ValueError, "text"),
        ({"values": np.zeros((2, 2)), "fmt": 3}, TypeError, "fmt"),
        ({"values": np.zeros((2, 2)), "xticklabels": ["a"]}, ValueError, "xticklabels"),
        ({"values": np.zeros((2, 2)), "ax": "left"}, TypeError, "ax"),
    ],
)
def test_annotated_grid_rejects_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        annotated_grid(**kwargs)


# --------------------------------------------------------------------------- image grids


def test_image_grid_lays_out_images_and_hides_spare_panels():
    images = torch.rand(5, 1, 6, 4)  # channels-first grey
    axes = image_grid(images, [f"#{i}" for i in range(5)], ncols=3, suptitle="five")
    assert axes.shape == (2, 3)
    assert [ax.get_title() for ax in axes.flat[:5]] == [f"#{i}" for i in range(5)]
    assert [len(ax.images) for ax in axes.flat] == [1, 1, 1, 1, 1, 0]
    assert axes[0, 0].images[0].get_array().shape == (6, 4)
    assert axes[0, 0].figure.get_suptitle() == "five"
    colour = image_grid([np.zeros((3, 5, 7)), np.ones((5, 7, 3))])  # CHW and HWC
    assert [ax.images[0].get_array().shape for ax in colour.flat] == [(5, 7, 3)] * 2


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "word"),
    [
        (([],), {}, ValueError, "images"),
        (([np.zeros((2, 2, 2, 2))],), {}, ValueError, r"images\[0\]"),
        (([np.zeros((2, 2))], ["a", "b"]), {}, ValueError, "titles"),
        (([np.zeros((2, 2))],), {"ncols": 0}, ValueError, "ncols"),
        (([np.zeros((2, 2))],), {"size": -1}, ValueError, "size"),
    ],
)
def test_image_grid_rejects_bad_arguments(args, kwargs, error, word):
    with pytest.raises(error, match=word):
        image_grid(*args, **kwargs)


def test_feature_maps_share_one_colour_scale():
    maps = np.stack([np.full((3, 3), -2.0), np.full((3, 3), 1.0), np.zeros((3, 3))])
    axes = feature_maps(maps, ncols=2)
    assert axes.shape == (2, 2) and axes[1, 0].get_title() == "channel 2"
    assert {ax.images[0].get_clim() for ax in axes.flat[:3]} == {(-2.0, 2.0)}
    assert axes[0, 0].images[0].get_cmap().name == "RdBu_r", "signed maps: diverging map"
    positive = feature_maps(torch.rand(4, 2, 2) + 1, titles=list("abcd"))
    assert positive[0, 0].images[0].get_cmap().name == "viridis"
    assert positive[0, 0].images[0].get_clim()[0] == 0
    with pytest.raises(ValueError, match="maps"):
        feature_maps(np.zeros((2, 2)))


# --------------------------------------------------------------------------- overlay


def test_overlay_draws_map_and_colorbar():
    photo = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    ax = overlay(photo, np.linspace(0, 1, 120).reshape(10, 12), title="map")
    assert ax.get_title() == "map"
    assert len(ax.images) == 2 and len(ax.figure.axes) == 2, "photo, map and a colorbar"
    assert ax.images[0].get_array().ndim == 2, "the photo is drawn in grey by default"
    assert ax.images[1].get_cmap().name == "inferno"
    signed = overlay(photo, np.linspace(-0.5, 0.25, 120).reshape(10, 12), colorbar=False)
    assert signed.images[1].get_cmap().name == "RdBu_r"
    assert signed.images[1].get_clim() == (-0.5, 0.5), "signed maps are centred on zero"
    _, ax2 = plt.subplots()
    assert overlay(photo[:, :, 0], np.zeros((10, 12)), ax=ax2, alpha=0.3) is ax2
    coloured = overlay(photo, np.zeros((10, 12)), gray_photo=False)
    assert coloured.images[0].get_array().shape == (10, 12, 3)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((8, 8, 4)), ValueError),
        (np.full((8, 8, 3), 2.0), ValueError),
        (np.full((8, 8), 300), ValueError),
        ([[0.0] * 8] * 8, TypeError),
    ],
)
def test_overlay_rejects_bad_images(image, error):
    with pytest.raises(error, match="image"):
        overlay(image, np.zeros((8, 8)))


def test_overlay_rejects_bad_heatmaps_and_options():
    photo = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="heatmap"):
        overlay(photo, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="heatmap"):
        overlay(photo, np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="alpha"):
        overlay(photo, np.zeros((8, 8)), alpha=2)
    with pytest.raises(TypeError, match="ax"):
        overlay(photo, np.zeros((8, 8)), ax="left")
    with pytest.raises(TypeError, match="colorbar"):
        overlay(photo, np.zeros((8, 8)), colorbar=1)


# --------------------------------------------------------------------------- history curves


def test_history_curves_of_one_history():
    h = History(
        train_loss=[1.0, 0.5, 0.25],
        train_acc=[0.5, 0.7, 0.9],
        val_loss=[1.1, 0.8, 0.7],
        val_acc=[0.4, 0.6, 0.65],
    )
    loss_ax, acc_ax = history_curves(h)
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]
    assert list(acc_ax.lines[1].get_ydata()) == [0.4, 0.6, 0.65]
    assert list(acc_ax.lines[0].get_xdata()) == [1, 2, 3], "epochs count from 1"
    assert loss_ax.get_ylabel() == "cross-entropy" and acc_ax.get_title() == "Accuracy"


def test_history_curves_compare_runs_one_colour_each():
    runs = {
        "plain": {"train_loss": [1.0, 0.5], "train_acc": [0.5, 0.8], "val_loss": [1.2, 1.0]},
        "dropout": {"train_loss": [1.1, 0.7], "train_acc": [0.4, 0.7]},
    }
    _, axes = plt.subplots(1, 2)
    loss_ax, acc_ax = history_curves(runs, axes)
    assert [line.get_label() for line in loss_ax.lines] == [
        "plain, train",
        "plain, validation",
        "dropout, train",
    ]
    assert len(acc_ax.lines) == 2, "no validation accuracy was recorded"
    assert loss_ax.lines[0].get_color() == OKABE_ITO[0] == loss_ax.lines[1].get_color()
    assert loss_ax.lines[2].get_color() == OKABE_ITO[1]
    assert loss_ax.lines[1].get_linestyle() == "--", "validation is dashed"


def test_history_curves_rejects_bad_arguments():
    with pytest.raises(ValueError, match="histories"):
        history_curves({})
    with pytest.raises(ValueError, match="histories"):
        history_curves({"a": {"train_loss": []}})
    with pytest.raises(ValueError, match="histories"):
        history_curves({str(i): {"train_loss": [1.0]} for i in range(len(OKABE_ITO) + 1)})
    with pytest.raises(ValueError, match="ax"):
        history_curves({"train_loss": [1.0]}, ax=[None])


# --------------------------------------------------------------------------- boxes


def test_draw_boxes_uses_pixel_centres_colours_and_names():
    _, ax = plt.subplots()
    ax.imshow(np.zeros((20, 20)))
    boxes = torch.tensor([[2.0, 3.0, 10.0, 7.0], [0.0, 0.0, 4.0, 4.0]])
    draw_boxes(
        ax,
        boxes,
        torch.tensor([1, 2]),
        colours={1: "red", 2: "blue"},
        names={1: "disc", 2: "square"},
        scores=[0.9, 0.25],
        style="--",
    )
    first = ax.patches[0]
    assert first.get_xy() == (1.5, 2.5) and (first.get_width(), first.get_height()) == (8, 4)
    assert first.get_linestyle() == "--"
    assert [t.get_text() for t in ax.texts] == ["disc 0.90", "square 0.25"]
    assert matplotlib.colors.to_hex(ax.patches[1].get_edgecolor()) == "#0000ff"
    plain = draw_boxes(plt.subplots()[1], np.array([[1, 1, 2, 2]]))
    assert len(plain.patches) == 1 and not plain.texts, "one colour, no captions"
    assert not draw_boxes(plt.subplots()[1], torch.zeros(0)).patches, "no boxes, no patches"


def test_draw_boxes_rejects_bad_arguments():
    _, ax = plt.subplots()
    with pytest.raises(TypeError, match="ax"):
        draw_boxes("ax", np.zeros((1, 4)))
    with pytest.raises(ValueError, match="boxes"):
        draw_boxes(ax, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(ax, np.zeros((2, 4)), np.array([1]))
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(ax, np.zeros((2, 4)), names={1: "a"})
    with pytest.raises(ValueError, match="scores"):
        draw_boxes(ax, np.zeros((2, 4)), np.array([1, 1]), scores=[0.5])


def test_palettes_are_distinct_valid_colours():
    for palette, n in ((OKABE_ITO, 7), (TOL_MUTED, 10)):
        assert len(set(palette)) == n and all(matplotlib.colors.is_color_like(c) for c in palette)


def test_book_figures_sets_column_text_sizes_and_sharp_inline_figures():
    from IPython.core.interactiveshell import InteractiveShell

    from cnnbook.viz import BOOK_TEXT_SIZES, book_figures

    with plt.rc_context():
        book_figures()  # outside IPython: text sizes only
        assert all(plt.rcParams[k] == v for k, v in BOOK_TEXT_SIZES.items())
        shell = InteractiveShell.instance()
        try:
            book_figures()
            fig, _ = plt.subplots(figsize=(2, 1), dpi=100)
            data, meta = shell.display_formatter.format(fig)
            shown = meta["image/png"]["width"]  # the figure's size (tight box: a few px more)
            assert 190 <= shown <= 230, shown
            png_width = int.from_bytes(base64.b64decode(data["image/png"])[16:20], "big")
            assert abs(png_width - 2 * shown) <= 1, "twice the pixels of its shown width"
            book_figures(photos=True)
            data, _ = shell.display_formatter.format(fig)
            assert "image/jpeg" in data and plt.rcParams["figure.dpi"] == 150
            plt.close(fig)
        finally:
            InteractiveShell.clear_instance()
    with pytest.raises((TypeError, ValueError), match="photos"):
        book_figures(photos="yes")


def test_show_photos_displays_a_jpeg_at_twice_the_pixels(monkeypatch):
    from IPython import display as ipython_display

    from cnnbook.viz import show_photos

    shown = []
    monkeypatch.setattr(ipython_display, "display", lambda obj: shown.append(obj))
    fig, ax = plt.subplots(figsize=(2, 1), dpi=100)
    ax.imshow(np.random.default_rng(0).random((20, 40, 3)))
    show_photos(fig)
    (image,) = shown
    assert image.format == "jpeg" and image.data[:2] == b"\xff\xd8"
    assert 180 <= image.width <= 230, "shown at the figure's size"
    assert not plt.fignum_exists(fig.number), "closed: no second copy below the cell"
    with pytest.raises(TypeError, match="fig"):
        show_photos("figure")
    with pytest.raises(ValueError, match="quality"):
        show_photos(plt.figure(), quality=100)
    plt.close("all")
