"""The GPU check: the book's full profile on one CUDA machine, in at most 10 minutes.

    make gpu-check                      # = PYTHONPATH=utils python3 benchmarks/gpu_check.py

1. **Headline** (chapter 10): ResNet-9 (``cifar_resnet(64)``) trained with
   ``cnnbook.fast_train`` and chapter 10's full recipe (``HEADLINE``, the chapter's
   ``FULL`` settings; a test keeps the two equal) on all 50,000 CIFAR-10 training
   images for 24 epochs, scored on all 10,000 test images: test accuracy, wall time,
   images/s, and whether it clears the chapter's 93.5% floor.
2. **Every other chapter with a full profile** (the notebooks that call ``by_profile``)
   is executed with ``CNNBOOK_PROFILE=full`` through nbclient, ``--jobs`` at a time, each
   with a time limit; a failure or a timeout is recorded and the check goes on. Without
   nbclient and ipykernel the chapters are recorded as "not run (needs Jupyter)".
   Chapter 10's notebook is not run again: the headline is its full-profile training.

The table goes to ``--out`` (default ``$OUT`` if set, else ``_build/gpu_check``) as
``gpu_check.md`` and ``gpu_check.json``. Data: the loaders' usual search
(``CNNBOOK_DATA_DIR``), so a device machine without network reads the packed CIFAR-10
that ``tools/pack_cifar.py`` writes (README, "GPU check"). Needs torch, torchvision,
numpy, Pillow and tqdm; nothing is installed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
HEADLINE_CHAPTER = "10_fast_resnet.ipynb"
FLOOR = 0.935  # chapter 10's full-profile assert


def use_packed_extras() -> None:
    """What tools/pack_cifar.py put next to the data: its MobileNetV2 weights as the torch
    hub cache (unless TORCH_HOME is set), its copy of tqdm only if Python has none."""
    data_dir = os.environ.get("CNNBOOK_DATA_DIR", "").strip()
    if not data_dir:
        return
    root = Path(data_dir).resolve()
    if (root / "torch" / "hub").is_dir() and not os.environ.get("TORCH_HOME"):
        os.environ["TORCH_HOME"] = str(root / "torch")
    if (root / "pylib").is_dir() and importlib.util.find_spec("tqdm") is None:
        sys.path.append(str(root / "pylib"))


def headline_settings() -> dict:
    """Chapter 10's FULL settings (cell a8651561); tests/test_gpu_check.py compares them."""
    from cnnbook.fast_recipe import Recipe

    return {
        "train_limit": None,
        "test_limit": None,
        "width": 64,
        "recipe": Recipe(
            epochs=24, batch_size=512, lr=0.4, label_smoothing=0.2, pad=4, ema_decay=0.99
        ),
    }


def environment() -> dict:
    """Versions, the device, and which optional modules this Python has."""
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpus": os.cpu_count(),
    }
    optional = ("torchvision", "numpy", "PIL", "tqdm", "nbclient", "ipykernel", "matplotlib")
    optional += ("sklearn", "scipy", "skimage", "captum", "ipywidgets")
    env["modules"] = {name: importlib.util.find_spec(name) is not None for name in optional}
    for var in ("CNNBOOK_DATA_DIR", "CNNBOOK_CIFAR_PACK", "TORCH_HOME", "CNNBOOK_MAX_STEPS"):
        env[var] = os.environ.get(var)
    return env


def run_headline(args: argparse.Namespace) -> dict:
    """Chapter 10's full-profile training; returns one row of the table."""
    import torch

    from cnnbook.data import as_tensors, cifar10
    from cnnbook.fast_train import train_fast
    from cnnbook.models.cifar_resnet import cifar_resnet
    from cnnbook.runtime import steps_capped

    settings = headline_settings()
    recipe = replace(settings["recipe"], compile=args.compile)
    if args.batch_size:
        recipe = replace(recipe, batch_size=args.batch_size)
    train_limit = args.train_limit or settings["train_limit"]
    test_limit = args.test_limit or settings["test_limit"]
    reduced = bool(args.batch_size or args.train_limit or args.test_limit or steps_capped())
    start = time.perf_counter()
    train = as_tensors(cifar10(train=True), limit=train_limit, seed=0)
    test = as_tensors(cifar10(train=False), limit=test_limit, seed=0)
    # uint8 on the device: a quarter of the memory, as in the chapter
    train = ((train[0] * 255).round().to(torch.uint8), train[1])
    test = ((test[0] * 255).round().to(torch.uint8), test[1])
    load_seconds = time.perf_counter() - start
    torch.manual_seed(0)
    model = cifar_resnet(settings["width"])
    result = train_fast(model, train, test, recipe, progress=False, on_epoch=_print_epoch)
    wall = time.perf_counter() - start
    passed = result.test_acc >= FLOOR
    return {
        "part": "chapter 10 headline",
        "what": f"ResNet-9 (width {settings['width']}), {len(train[1]):,} train / "
        f"{len(test[1]):,} test images, {recipe.epochs} epochs, batch {recipe.batch_size}"
        + (", compiled" if recipe.compile else ""),
        "status": "reduced (not the full profile)" if reduced else ("ok" if passed else "below"),
        "seconds": round(wall, 1),
        "train_seconds": round(result.train_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "images_per_second": round(result.images_per_second),
        "test_acc": result.test_acc,
        "floor": FLOOR,
        "steps": result.steps,
        "amp": result.amp,
        "channels_last": result.channels_last,
        "device": result.device,
        "recipe": asdict(recipe),
    }


def _print_epoch(row: dict) -> None:
    print(
        f"  epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
        f"train acc {row['train_acc']:.3f}, {row['seconds']:.1f} s",
        flush=True,
    )


def full_profile_chapters() -> list[Path]:
    """Chapters whose settings depend on the profile (they call ``by_profile``), but 10."""
    return [
        path
        for path in sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
        if path.name != HEADLINE_CHAPTER and "by_profile(" in path.read_text()
    ]


def execute_notebook(path: Path, seconds: float) -> None:
    """Child mode: run every cell of ``path`` (its folder as the working directory); each
    cell may use what is left of ``seconds``. Raises on the first error or timeout."""
    import nbclient
    import nbformat

    deadline = time.monotonic() + seconds
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout_func=lambda _cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()


def run_chapter(path: Path, seconds: float, env: dict) -> dict:
    """Execute one chapter in a child process; returns its row of the table."""
    start = time.perf_counter()
    cmd = [sys.executable, __file__, "--execute", str(path), "--seconds", str(int(seconds))]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a timeout can stop the child and its kernel together
    )
    try:
        output, _ = proc.communicate(timeout=seconds + 30)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = "timeout"
    if status == "failed" and re.search(r"CellTimeoutError|timed out", output):
        status = "timeout"
    row = {
        "part": f"chapter {path.name[:2]}",
        "what": f"{path.name}, CNNBOOK_PROFILE=full",
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "limit_seconds": int(seconds),
    }
    if status != "ok":
        row["error_tail"] = "\n".join(output.strip().splitlines()[-15:])
    return row


def run_chapters(args: argparse.Namespace, deadline: float) -> list[dict]:
    chapters = full_profile_chapters()
    if args.chapters:
        chapters = [p for p in chapters if p.name[:2] in args.chapters.split(",")]
    missing = [m for m in ("nbclient", "nbformat", "ipykernel") if not importlib.util.find_spec(m)]
    if missing or args.skip_notebooks:
        note = "not run (needs Jupyter: " + ", ".join(missing) + ")" if missing else "skipped"
        return [_not_run(p, note) for p in chapters]
    env = dict(os.environ, CNNBOOK_PROFILE="full")
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(ROOT / "utils")] + [str(Path(p).resolve()) for p in inherited]
    paths += [p for p in sys.path if p.endswith(os.sep + "pylib")]  # see use_packed_extras
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    rows: dict[Path, dict] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for path in chapters:
            futures[pool.submit(_run_if_time, path, args.chapter_timeout, deadline, env)] = path
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            rows[futures[future]] = row
            print(f"{row['part']}: {row['status']} in {row['seconds']} s", flush=True)
    return [rows[p] for p in chapters]


def _run_if_time(path: Path, limit: float, deadline: float, env: dict) -> dict:
    left = deadline - time.monotonic()
    if left < 20:
        return _not_run(path, "not run (time budget spent)")
    return run_chapter(path, min(limit, left), env)


def _not_run(path: Path, status: str) -> dict:
    return {"part": f"chapter {path.name[:2]}", "what": path.name, "status": status}


def markdown(env: dict, rows: list[dict]) -> str:
    lines = [
        "# GPU check",
        "",
        f"{env['device']} | Python {env['python']} | torch {env['torch']} (CUDA {env['cuda']})"
        f" | {env['cpus']} CPUs",
        "",
        "| part | what | status | wall s | test acc | images/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        acc = f"{r['test_acc']:.2%}" if "test_acc" in r else ""
        ips = f"{r['images_per_second']:,}" if "images_per_second" in r else ""
        lines.append(
            f"| {r['part']} | {r['what']} | {r['status']} | {r.get('seconds', '')} | {acc} "
            f"| {ips} |"
        )
    missing = [name for name, ok in env["modules"].items() if not ok]
    lines += ["", f"Modules missing on this machine: {', '.join(missing) or 'none'}."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_out = os.environ.get("OUT") or str(ROOT / "_build" / "gpu_check")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(default_out))
    p.add_argument("--budget", type=float, default=540, help="seconds for the whole check")
    p.add_argument("--chapter-timeout", type=float, default=300, help="seconds per chapter")
    p.add_argument("--jobs", type=int, default=3, help="chapters executed at a time")
    p.add_argument("--chapters", default="", help="only these, e.g. 07,11 (default all)")
    p.add_argument("--skip-notebooks", action="store_true")
    p.add_argument("--skip-headline", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the headline model")
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (tests)")
    g = p.add_argument_group("a reduced headline (CPU tests; the table says so)")
    g.add_argument("--train-limit", type=int, default=None)
    g.add_argument("--test-limit", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--execute", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=300, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.execute is not None:
        execute_notebook(args.execute, args.seconds)
        return 0
    deadline = time.monotonic() + args.budget
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_check: torch sees no CUDA device (--allow-cpu runs it anyway)", file=sys.stderr)
        return 2
    os.environ.setdefault("CNNBOOK_OFFLINE", "1")  # device machines have no network
    use_packed_extras()
    sys.path.insert(0, str(ROOT / "utils"))
    env = environment()
    print(json.dumps(env), flush=True)
    rows = []
    if not args.skip_headline:
        try:
            rows.append(run_headline(args))
        except Exception as err:  # noqa: BLE001 - recorded; the chapters still run
            rows.append(
                {"part": "chapter 10 headline", "what": "ResNet-9", "status": "failed",
                 "error_tail": f"{type(err).__name__}: {err}"}
            )  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    rows += run_chapters(args, deadline)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(
        json.dumps({"environment": env, "rows": rows}, indent=1)
    )
    table = markdown(env, rows)
    (args.out / "gpu_check.md").write_text(table)
    print(table)
    bad = [r for r in rows if r["status"] in ("failed", "timeout", "below")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
