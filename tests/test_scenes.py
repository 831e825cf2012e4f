"""cnnbook.scenes: determinism, consistency of boxes/masks/labels/maps, bad arguments, speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from cnnbook.scenes import CLASSES, TEXTURES, SceneDataset, Scenes, make_scenes, texture_credits


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    return make_scenes(64, size=48, max_objects=5, seed=7)


def test_shapes_and_dtypes(scenes: Scenes) -> None:
    n, size = 64, 48
    assert len(scenes) == n
    assert scenes.images.shape == (n, 3, size, size) and scenes.images.dtype == torch.float32
    assert 0.0 <= scenes.images.min() and scenes.images.max() <= 1.0
    assert scenes.semantic.shape == (n, size, size) and scenes.semantic.dtype == torch.int64
    assert scenes.instances.shape == (n, size, size) and scenes.instances.dtype == torch.int64
    assert len(scenes.boxes) == len(scenes.labels) == len(scenes.masks) == n
    for b, lab, m in zip(scenes.boxes, scenes.labels, scenes.masks, strict=True):
        k = len(lab)
        assert 1 <= k <= 5
        assert b.shape == (k, 4) and b.dtype == torch.float32
        assert lab.dtype == torch.int64 and lab.min() >= 1 and lab.max() <= len(CLASSES)
        assert m.shape == (k, size, size) and m.dtype == torch.bool


def test_deterministic_for_a_seed() -> None:
    a = make_scenes(20, seed=3)
    b = make_scenes(20, seed=3)
    c = make_scenes(20, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.semantic, b.semantic)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    assert not torch.equal(a.images, c.images)


def test_boxes_are_tight_around_visible_masks(scenes: Scenes) -> None:
    for b, m in zip(scenes.boxes, scenes.masks, strict=True):
        # torchvision reports the last row/column; our boxes end one pixel later
        expected = masks_to_boxes(m) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        assert torch.equal(b, expected)
        ys, xs = torch.meshgrid(torch.arange(m.shape[1]), torch.arange(m.shape[2]), indexing="ij")
        for box, mask in zip(b, m, strict=True):
            assert mask.any()
            x1, y1, x2, y2 = box.tolist()
            assert (xs[mask] >= x1).all() and (xs[mask] + 1 <= x2).all()
            assert (ys[mask] >= y1).all() and (ys[mask] + 1 <= y2).all()


def test_semantic_and_instance_maps_agree_with_masks(scenes: Scenes) -> None:
    for i in range(len(scenes)):
        m, lab = scenes.masks[i], scenes.labels[i]
        # visible masks never overlap
        assert int(m.sum(dim=0).max()) <= 1
        expected = (m.long() * lab[:, None, None]).sum(dim=0)
        assert torch.equal(scenes.semantic[i], expected)
        ids = torch.arange(1, len(lab) + 1)[:, None, None]
        assert torch.equal(scenes.instances[i], (m.long() * ids).sum(dim=0))


def test_objects_are_visible_and_occlusion_happens() -> None:
    s = make_scenes(300, max_objects=6, min_objects=3, seed=1, min_visible=0.3)
    areas = torch.cat([m.flatten(1).sum(1) for m in s.masks])
    assert areas.min() >= 6
    # with 3 to 6 objects some masks must be partly covered: a mask not filling its box
    fill = torch.cat(
        [
            m.flatten(1).sum(1) / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
            for m, b in zip(s.masks, s.boxes, strict=True)
        ]
    )
    assert fill.max() <= 1.0 and fill.min() < 0.5
    # every class and every count appears
    labels = torch.cat(s.labels)
    assert set(labels.tolist()) == {1, 2, 3}


def test_tiny_objects_still_leave_one_object_per_scene() -> None:
    # radius 1.6 px: below the few-pixel rule, but the top object is always kept
    s = make_scenes(300, size=16, scale=(0.1, 0.1), max_objects=3, seed=4)
    assert min(len(lab) for lab in s.labels) >= 1
    assert all(int(m.flatten(1).sum(1).min()) >= 1 for m in s.masks)


def test_min_objects_zero_allows_empty_scenes() -> None:
    s = make_scenes(200, min_objects=0, max_objects=1, seed=2)
    counts = [len(lab) for lab in s.labels]
    assert 0 in counts and 1 in counts
    empty = counts.index(0)
    assert s.boxes[empty].shape == (0, 4) and s.masks[empty].shape == (0, 64, 64)
    assert int(s.semantic[empty].max()) == 0


def test_targets_and_dataset(scenes: Scenes) -> None:
    targets = scenes.targets()
    assert len(targets) == len(scenes)
    assert set(targets[0]) == {"boxes", "labels", "masks"}
    ds = SceneDataset(scenes)
    image, target = ds[5]
    assert len(ds) == len(scenes)
    assert torch.equal(image, scenes.images[5])
    assert torch.equal(target["boxes"], scenes.boxes[5])
    assert torch.equal(target["semantic"], scenes.semantic[5])
    with pytest.raises(TypeError, match="scenes"):
        SceneDataset([1, 2])  # type: ignore[arg-type]


def test_one_import_path_and_credits() -> None:
    from cnnbook import data

    assert not hasattr(data, "make_scenes"), "make_scenes is imported from cnnbook.scenes only"
    credits = texture_credits()
    assert len(credits) == len(TEXTURES) and all("CC0" in c for c in credits)


def test_class_hues_give_each_class_its_colour() -> None:
    s = make_scenes(100, class_hues=True, seed=5)
    for image, m, lab in zip(s.images, s.masks, s.labels, strict=True):
        for mask, label in zip(m, lab, strict=True):
            mean_rgb = image[:, mask].mean(dim=1)  # (3,)
            # circles red, squares green, triangles blue
            assert int(mean_rgb.argmax()) == int(label) - 1
    # the option changes colours only: same shapes, masks and boxes as without it
    plain = make_scenes(100, seed=5)
    assert torch.equal(plain.semantic, s.semantic)


def test_rotate_false_gives_axis_aligned_squares() -> None:
    s = make_scenes(200, max_objects=1, rotate=False, seed=6)
    for b, m, lab in zip(s.boxes, s.masks, s.labels, strict=True):
        if int(lab[0]) == 2:
            area = (b[0, 2] - b[0, 0]) * (b[0, 3] - b[0, 1])
            assert int(m[0].sum()) == int(area)


def test_other_textures_and_sizes() -> None:
    s = make_scenes(4, size=100, textures=("coins", "camera"), scale=(0.2, 0.2), seed=0)
    assert s.images.shape == (4, 3, 100, 100)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n": 0}, ValueError, "n"),
        ({"n": 2.0}, TypeError, "n"),
        ({"n": 2, "size": 8}, ValueError, "size"),
        ({"n": 2, "size": 300}, ValueError, "size"),
        ({"n": 2, "size": "64"}, TypeError, "size"),
        ({"n": 2, "max_objects": 0}, ValueError, "max_objects"),
        ({"n": 2, "min_objects": -1}, ValueError, "min_objects"),
        ({"n": 2, "min_objects": 5, "max_objects": 4}, ValueError, "min_objects"),
        ({"n": 2, "seed": -1}, ValueError, "seed"),
        ({"n": 2, "seed": None}, TypeError, "seed"),
        ({"n": 2, "scale": 0.2}, TypeError, "scale"),
        ({"n": 2, "scale": (0.3, 0.1)}, ValueError, "scale"),
        ({"n": 2, "scale": (0.01, 0.1)}, ValueError, "scale"),
        ({"n": 2, "min_visible": 1.5}, ValueError, "min_visible"),
        ({"n": 2, "min_visible": "a"}, TypeError, "min_visible"),
        ({"n": 2, "textures": ("wood",)}, ValueError, "textures"),
        ({"n": 2, "textures": "brick"}, TypeError, "textures"),
        ({"n": 2, "textures": ()}, ValueError, "textures"),
        ({"n": 2, "rotate": 1}, TypeError, "rotate"),
        ({"n": 2, "class_hues": "yes"}, TypeError, "class_hues"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, name: str) -> None:
    n = kwargs.pop("n")
    with pytest.raises(error, match=name):
        make_scenes(n, **kwargs)


def test_chapter_sized_batch_of_2000_scenes() -> None:
    # How long this takes is measured by benchmarks/library_speed.py, not asserted here
    s = make_scenes(2000, seed=11)
    assert len(s) == 2000
    assert np.isfinite(s.images.numpy()).all()
