"""How long the library's chapter-facing builders take: seconds per call against each budget.

    python benchmarks/library_speed.py [--repeat N]

Each row is one thing a chapter does in a cell while its reader waits: generate chapter
15's 2,000 training scenes, precompute the receptive-field explorer of chapter 4, build the
upsampling explorer of chapter 16 and the attribution explorer of chapter 13 (three
photos, three stages, MobileNetV2's architecture with random weights, so no download).
Times are the best of ``repeat`` calls after one warm-up, wall and CPU seconds. The
budgets are what a chapter can spend on the step inside its 90 s; a shared machine can
exceed them, which is why they are printed here and not asserted in the tests.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from here)

from cnnbook.photos import sample_photo
from cnnbook.scenes import make_scenes


def scenes() -> object:
    return make_scenes(2000, seed=11)


def receptive_field() -> object:
    from cnnbook.widgets.receptive_field import ReceptiveField

    return ReceptiveField(sample_photo("chelsea"))


def upsampling() -> object:
    from cnnbook.widgets.upsampling import UpsamplingExplorer

    return UpsamplingExplorer().to_html()


def attribution() -> object:
    import torchvision

    from cnnbook.widgets.attribution_explorer import AttributionExplorer

    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    chosen = {name: sample_photo(name) for name in ("chelsea", "coffee", "astronaut")}
    stages = ["features.18", "features.13", "features.6"]
    return AttributionExplorer(net, chosen, stages).to_html()


# (what, function, budget in seconds)
ROWS: list[tuple[str, Callable[[], object], float]] = [
    ("make_scenes(2000) (ch 15)", scenes, 2.0),
    ("ReceptiveField(photo) (ch 4)", receptive_field, 20.0),
    ("UpsamplingExplorer().to_html() (ch 16)", upsampling, 3.0),
    ("AttributionExplorer, 3 photos x 3 stages (ch 13)", attribution, 3.0),
]


def best(func: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeat`` calls, after one warm-up call."""
    func()
    wall = cpu = float("inf")
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        func()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per row (best kept)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    print(
        f"machine: {cpu_model()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    print()
    print("| step | wall s | CPU s | budget s | within budget |")
    print("|---|---:|---:|---:|---|")
    for what, func, budget in ROWS:
        wall, cpu = best(func, args.repeat)
        verdict = "yes" if wall <= budget else "no"
        print(f"| {what} | {wall:.2f} | {cpu:.2f} | {budget:.0f} | {verdict} |")


if __name__ == "__main__":
    main()
