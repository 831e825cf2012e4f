"""The ViT diagrams: shapes from the library's ViT, weights from a real softmax."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from cnnbook.diagrams.style import diagram_texts
from cnnbook.diagrams.vit import patch_attention, patch_attention_weights, patch_embedding
from cnnbook.models.vit import PatchEmbedding, ViT


def image(H: int = 64, W: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("pool", "size", "patch", "dim"), [("cls", 64, 16, 32), ("mean", 48, 8, 24)]
)
def test_patch_embedding_labels_are_the_forward_shapes(pool, size, patch, dim):
    torch.manual_seed(0)
    model = ViT(size, patch, 3, 10, dim=dim, depth=1, heads=2, pool=pool)
    x = image(size, size)
    with torch.no_grad():
        tokens = model.tokens(x[None])
    L = (size // patch) ** 2
    fig = patch_embedding(model, x, shown=2)
    texts = diagram_texts(fig)
    assert f"{size}×{size}, {L} patches" in texts
    assert f"flattened: 3·{patch}·{patch} = {model.embed.proj.in_features}" in texts
    assert f"Linear {3 * patch * patch} → {model.embed.proj.out_features}" in texts
    assert f"tokens ({tokens.shape[1]}, {tokens.shape[2]})" in texts
    assert texts.count(f"{dim}-vector") == 3 + (pool == "cls")  # 2 shown, the last, [cls]
    positions = [t for t in texts if t.startswith("+ pos ")]
    first = 1 if pool == "cls" else 0
    expected = (["+ pos 0"] if pool == "cls" else []) + [
        f"+ pos {k + first}" for k in (0, 1, L - 1)
    ]
    assert positions == expected
    assert ("class token" in texts) == (pool == "cls")
    plt.close(fig)


def test_attention_weights_are_the_softmax_of_the_scaled_scores():
    x, patch, query, dim = image(64, 96), 16, 7, 16
    weights = patch_attention_weights(x, patch, query, dim=dim, seed=3)
    # recompute by hand: standardise, embed with the same seeded layer, layer-norm, softmax
    z = (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True)
    torch.manual_seed(3)
    embed = PatchEmbedding(3, dim, patch)
    with torch.no_grad():
        t = F.layer_norm(embed(z[None])[0], (dim,))
    expected = torch.softmax(t[query] @ t.T / math.sqrt(dim), dim=0)
    assert weights.shape == (24,)
    assert torch.allclose(weights, expected, atol=1e-6)
    assert math.isclose(weights.sum().item(), 1.0, rel_tol=1e-6)


def test_attention_diagram_draws_the_computed_weights():
    x = image(64, 64, seed=1)
    weights = patch_attention_weights(x, 16, 5)
    fig = patch_attention(x, 16, 5)
    texts = diagram_texts(fig)
    drawn = [t for t in texts if t.endswith("%")]
    assert drawn == [f"{w:.1%}" for w in weights.tolist()]
    assert abs(sum(float(t[:-1]) for t in drawn) - 100) < 0.05 * len(drawn)
    assert "softmax weights, sum 1.000" in texts and "query: patch 5 of 16" in texts
    plt.close(fig)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: patch_embedding("vit", image()), TypeError, "model"),
        (
            lambda: patch_embedding(ViT(64, 16, 3, 10, dim=8, depth=1, heads=2), image(32, 32)),
            ValueError,
            "image",
        ),
        (
            lambda: patch_embedding(ViT(64, 16, 3, 10, dim=8, depth=1, heads=2), image(), shown=0),
            ValueError,
            "shown",
        ),
        (
            lambda: patch_embedding(ViT(64, 16, 3, 10, dim=8, depth=1, heads=2), image(), shown=9),
            ValueError,
            "shown",
        ),
        (lambda: patch_attention_weights(image().numpy(), 16, 0), TypeError, "image"),
        (lambda: patch_attention_weights(image()[0], 16, 0), ValueError, "image"),
        (lambda: patch_attention_weights(image(), 24, 0), ValueError, "patch"),
        (lambda: patch_attention_weights(image(), 16, 16), ValueError, "query"),
        (lambda: patch_attention_weights(image(), 16, -1), ValueError, "query"),
        (lambda: patch_attention_weights(image(), 16, 0, dim=0), ValueError, "dim"),
        (lambda: patch_attention(image(), 8, 0), ValueError, "36 patches"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
    plt.close("all")
