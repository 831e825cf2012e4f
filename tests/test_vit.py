"""Tests of cnnbook.vit and cnnbook.models.vit: patch embedding against a strided Conv2d,
attention against nn.MultiheadAttention and F.scaled_dot_product_attention, Swin windows
against a loop reference, ViT shapes, and bad arguments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook.models.vit import MultiHeadSelfAttention, PatchEmbedding, TransformerBlock, ViT
from cnnbook.vit import (
    attention,
    patchify,
    shifted_window_mask,
    unpatchify,
    window_partition,
    window_reverse,
)

SETTINGS = settings(max_examples=25, deadline=None)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=1e-4)


@st.composite
def images(draw, max_patch: int = 4):
    """(x, patch) with x: (N, C, H, W), H and W multiples of patch."""
    p = draw(st.integers(1, max_patch))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H, W = p * draw(st.integers(1, 4)), p * draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    x = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(seed))
    return x, p


@SETTINGS
@given(images())
def test_patchify_matches_unfold_and_round_trips(case):
    x, p = case
    tokens = patchify(x, p)
    N, C, H, W = x.shape
    assert tokens.shape == (N, (H // p) * (W // p), C * p * p)
    assert torch.equal(tokens, F.unfold(x, p, stride=p).transpose(1, 2))
    assert torch.equal(unpatchify(tokens, p, H, W), x)


@SETTINGS
@given(images(), st.integers(1, 6))
def test_patch_embedding_is_a_strided_conv_both_ways(case, dim):
    x, p = case
    embed = PatchEmbedding(x.shape[1], dim, p)
    conv = embed.to_conv()
    assert conv.kernel_size == (p, p) and conv.stride == (p, p)
    with torch.no_grad():
        tokens = embed(x)  # (N, L, dim)
        via_conv = conv(x).flatten(2).transpose(1, 2)
        assert _close(tokens, via_conv)
        # and back: a random strided conv becomes a PatchEmbedding with equal outputs
        other = nn.Conv2d(x.shape[1], dim, p, stride=p)
        back = PatchEmbedding.from_conv(other)
        assert _close(back(x), other(x).flatten(2).transpose(1, 2))
        assert torch.equal(PatchEmbedding.from_conv(conv).proj.weight, embed.proj.weight)


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 6),
    st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 4), (12, 3)]),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_attention_matches_multihead(N, L, dim_heads, masked, seed):
    dim, heads = dim_heads
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    ours = MultiHeadSelfAttention(dim, heads).copy_from(mha)
    x = torch.randn(N, L, dim)
    mask = None
    if masked:  # causal mask: every row keeps at least its own position
        mask = torch.full((L, L), float("-inf")).triu(1)
    with torch.no_grad():
        expected, weights = mha(x, x, x, attn_mask=mask, average_attn_weights=False)
        got = ours(x, mask)
    assert _close(got, expected)
    assert _close(ours.last_weights, weights)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 8), st.integers(0, 2**16))
def test_attention_function_matches_sdpa(L, S, d, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, L, d, generator=g), torch.randn(2, S, d, generator=g)
    v = torch.randn(2, S, 3, generator=g)
    out, weights = attention(q, k, v)
    assert _close(out, F.scaled_dot_product_attention(q, k, v))
    assert _close(weights.sum(-1), torch.ones(2, L))


def _windows_by_loops(x: torch.Tensor, M: int) -> torch.Tensor:
    """Reference: visit the windows one by one. x: (N, H, W, C) -> (N * nW, M * M, C)."""
    N, H, W, C = x.shape
    out = []
    for n in range(N):
        for i in range(0, H, M):
            for j in range(0, W, M):
                out.append(x[n, i : i + M, j : j + M].reshape(M * M, C))
    return torch.stack(out)


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
)
def test_window_partition_matches_loops_and_round_trips(N, M, nH, nW, C):
    H, W = nH * M, nW * M
    x = torch.randn(N, H, W, C)
    windows = window_partition(x, M)
    assert torch.equal(windows, _windows_by_loops(x, M))
    assert torch.equal(window_reverse(windows, M, H, W), x)


@SETTINGS
@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_shifted_window_mask_matches_rolled_regions(M, nH, nW, data):
    shift = data.draw(st.integers(0, M - 1))
    H, W = nH * M, nW * M
    mask = shifted_window_mask(H, W, M, shift)
    assert mask.shape == ((H // M) * (W // M), M * M, M * M)
    # Reference: the rolled map's position (r, c) came from the image position
    # (rows[r], cols[c]). Windows shifted by `shift` cover image rows
    # [k M + shift, (k + 1) M + shift), so that position's true window is
    # floor((rows[r] - shift) / M); the wrapped strip gets index -1. Two positions may
    # attend to each other exactly when their true windows agree in both directions.
    rows = torch.arange(H).roll(-shift)  # image row of each rolled row
    cols = torch.arange(W).roll(-shift)
    win_r = torch.div(rows - shift, M, rounding_mode="floor")
    win_c = torch.div(cols - shift, M, rounding_mode="floor")
    true_window = win_r[:, None] * (W + 1) + win_c[None, :]  # one id per (row, col) pair
    ids = window_partition(true_window[None, :, :, None].float(), M).squeeze(-1)
    expected_keep = ids[:, :, None] == ids[:, None, :]
    assert torch.equal(mask == 0, expected_keep)
    assert torch.isneginf(mask[~expected_keep]).all()
    if shift == 0:
        assert (mask == 0).all()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes(pool):
    model = ViT(16, 4, 3, 7, dim=16, depth=2, heads=2, pool=pool)
    x = torch.randn(5, 3, 16, 16)
    assert model(x).shape == (5, 7)
    assert model.tokens(x).shape == (5, 16 + (pool == "cls"), 16)
    block = TransformerBlock(16, 4)
    assert block(torch.randn(2, 9, 16)).shape == (2, 9, 16)


def test_vit_mean_pool_ignores_token_order_without_positions():
    # With position embeddings zeroed, permuting the patches does not change mean pooling:
    # self-attention alone treats the tokens as a set.
    torch.manual_seed(0)
    model = ViT(8, 2, 1, 3, dim=8, depth=1, heads=2, pool="mean").eval()
    with torch.no_grad():
        model.pos_embed.zero_()
        t = model.embed(torch.randn(2, 1, 8, 8))
        perm = torch.randperm(t.shape[1])

        def run(tokens):
            for block in model.blocks:
                tokens = block(tokens)
            return model.head(model.norm(tokens).mean(1))

        assert _close(run(t), run(t[:, perm]))


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: patchify(torch.zeros(1, 1, 6, 6), 4), ValueError, "patch"),
        (lambda: patchify(torch.zeros(1, 6, 6), 2), ValueError, "x"),
        (lambda: patchify([[1.0]], 2), TypeError, "x"),
        (lambda: patchify(torch.zeros(1, 1, 4, 4), 0), ValueError, "patch"),
        (lambda: patchify(torch.zeros(1, 1, 4, 4), 2.0), TypeError, "patch"),
        (lambda: unpatchify(torch.zeros(1, 3, 4), 2, 4, 4), ValueError, "tokens"),
        (lambda: PatchEmbedding(3, 0, 4), ValueError, "dim"),
        (lambda: PatchEmbedding.from_conv(nn.Conv2d(3, 4, 3, stride=1)), ValueError, "conv"),
        (lambda: PatchEmbedding.from_conv(nn.Linear(3, 4)), TypeError, "conv"),
        (lambda: MultiHeadSelfAttention(10, 3), ValueError, "heads"),
        (
            lambda: MultiHeadSelfAttention(8, 2).copy_from(nn.MultiheadAttention(8, 4)),
            ValueError,
            "mha",
        ),
        (
            lambda: attention(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4)),
            ValueError,
            "k",
        ),
        (lambda: ViT(30, 4, 3, 10), ValueError, "patch"),
        (lambda: ViT(32, 4, 3, 10, pool="max"), ValueError, "pool"),
        (lambda: ViT(32, 4, 3, 10)(torch.zeros(1, 3, 16, 16)), ValueError, "x"),
        (lambda: window_partition(torch.zeros(1, 6, 8, 2), 4), ValueError, "M"),
        (lambda: window_reverse(torch.zeros(3, 16, 2), 4, 8, 8), ValueError, "windows"),
        (lambda: shifted_window_mask(8, 8, 4, 4), ValueError, "shift"),
        (lambda: shifted_window_mask(8, 8, 4, -1), ValueError, "shift"),
    ],
)
def test_bad_arguments(call, error, name):
    with pytest.raises(error, match=name):
        call()
