"""NumPy convolution versus torch: seconds per call and the ratio to torch, as a markdown table.

Problem: a ResNet-style layer, x: (8, 64, 56, 56), weight: (64, 64, 3, 3), padding 1,
float32. ``conv2d_loops`` is far too slow for it, so it runs on one image and a few output
rows and its time is scaled up to the full problem (marked "extrapolated").

    python benchmarks/conv_speed.py [--repeat N] [--threads T] [--loop-rows R]

torch and NumPy's BLAS get the same thread count. Timings are best-of-N, and the methods
take turns inside each round so that background load hits them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from here)
from threadpoolctl import threadpool_info, threadpool_limits

from cnnbook.numpy_ops import conv2d_im2col, conv2d_loops

N, C_IN, C_OUT, H, W, K, PADDING = 8, 64, 64, 56, 56, 3, 1


def blas_description() -> str:
    libs = [
        f"{i['internal_api']} {i.get('version') or ''} ({i.get('architecture') or '?'}, "
        f"{i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    return "; ".join(libs) or "none found"


def best_times(funcs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best wall time of each function; one warm-up call, then ``repeat`` interleaved rounds."""
    for f in funcs.values():
        f()
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeat):
        for name, f in funcs.items():
            start = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed rounds (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and BLAS")
    parser.add_argument(
        "--loop-rows", type=int, default=2, help="output rows conv2d_loops computes"
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.threads < 1 or not 1 <= args.loop_rows <= H:
        parser.error(f"need --repeat >= 1, --threads >= 1 and 1 <= --loop-rows <= {H}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C_IN, H, W), dtype=np.float32)
    # scaled so outputs are about unit size, which makes the max abs error meaningful
    weight = rng.standard_normal((C_OUT, C_IN, K, K), dtype=np.float32) / (C_IN * K * K) ** 0.5
    bias = rng.standard_normal(C_OUT, dtype=np.float32)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, weight, bias))

    # conv2d_loops on one image and the first `loop-rows` input rows: with padding 1 and a
    # 3x3 kernel that gives exactly `loop-rows` output rows of 56 values each.
    x_small = x[:1, :, : args.loop_rows]
    scale = N * H / args.loop_rows

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        out_torch = F.conv2d(tx, tw, tb, padding=PADDING).numpy()
        out_im2col = conv2d_im2col(x, weight, bias, padding=PADDING)
        out_loops = conv2d_loops(x_small, weight, bias, padding=PADDING)
        err = float(np.abs(out_im2col - out_torch).max())
        # the last computed row sees zero padding below it, so compare the rows above it
        diff = out_loops[:, :, :-1] - out_torch[:1, :, : args.loop_rows - 1]
        err_loops = float(np.abs(diff).max(initial=0.0))
        assert err < 1e-3, f"conv2d_im2col disagrees with torch: max abs error {err:.2e}"
        assert err_loops < 1e-3, f"conv2d_loops disagrees with torch: {err_loops:.2e}"

        times = best_times(
            {
                "torch": lambda: F.conv2d(tx, tw, tb, padding=PADDING),
                "im2col": lambda: conv2d_im2col(x, weight, bias, padding=PADDING),
            },
            args.repeat,
        )
        loops_small = best_times(
            {"loops": lambda: conv2d_loops(x_small, weight, bias, padding=PADDING)},
            max(1, min(args.repeat, 3)),  # slow and stable: a few rounds are enough
        )["loops"]
        blas = blas_description()

    t_torch = times["torch"]
    rows = [
        ("torch.nn.functional.conv2d", t_torch),
        ("cnnbook conv2d_im2col", times["im2col"]),
        (
            f"cnnbook conv2d_loops (extrapolated from N=1, {args.loop_rows} output rows)",
            loops_small * scale,
        ),
    ]
    print(
        f"Problem: x ({N}, {C_IN}, {H}, {W}), weight ({C_OUT}, {C_IN}, {K}, {K}), "
        f"padding {PADDING}, float32; best of {args.repeat}\n"
    )
    print("| method | seconds | ratio to torch |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.4f} | {seconds / t_torch:.1f}x |")
    print(
        f"\nmax abs error im2col vs torch: {err:.2e}; loops vs torch: {err_loops:.2e}\n"
        f"\nMachine: {cpu_model()}, {os.cpu_count()} logical cores; threads: torch "
        f"{torch.get_num_threads()}, BLAS {args.threads}\n"
        f"numpy {np.__version__}, torch {torch.__version__}, Python {platform.python_version()}\n"
        f"BLAS: {blas}"
    )


if __name__ == "__main__":
    main()
