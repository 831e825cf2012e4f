"""Execute every chapter notebook and print its wall time and the kernel's peak memory.

    python benchmarks/notebook_times.py [chapters/01_*.ipynb ...]

Each notebook runs in a fresh kernel started by a fresh child process, so the peak
resident memory reported (``ru_maxrss`` of the reaped kernel) belongs to that notebook
alone. Budgets (DESIGN.md): at most 90 s per chapter and 15 min for the book on a 2-core
CPU in the quick profile; peak memory under 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_model  # benchmarks/_machine.py (scripts run from here)

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S, BUDGET_MB = 90.0, 3072.0
BOOK_BUDGET_S = 600.0  # the whole book: 10 minutes


def run_one(path: Path) -> dict:
    """Execute one notebook in this process's child kernel; return seconds and peak MB."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    # The kernel was our child and has been reaped, so its peak RSS is counted here (KiB).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0

    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    profile = os.environ.get("CNNBOOK_PROFILE", "default")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"profile: {profile}; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| chapter | seconds | peak memory (MB) | within budget |")
    print("|---|---:|---:|---|")
    total, failures = 0.0, 0
    for path in notebooks:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(path)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            failures += 1
            print(f"| {path.stem} | failed | | no |")
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        total += result["seconds"]
        ok = result["seconds"] <= BUDGET_S and result["peak_mb"] <= BUDGET_MB
        print(
            f"| {path.stem} | {result['seconds']:.1f} | {result['peak_mb']:.0f} | "
            f"{'yes' if ok else 'NO'} |"
        )
    print(f"| **total** | {total:.1f} | | {'yes' if total <= BOOK_BUDGET_S else 'NO'} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
