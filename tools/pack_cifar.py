"""Pack the data a GPU check needs into one small folder that a device machine can take.

    python tools/pack_cifar.py --out gpu_data

writes, from the offline mirror (``CNNBOOK_DATA_DIR`` or ../shared/data):

* ``gpu_data/cifar10-pack.npz``: all 60,000 CIFAR-10 JPEGs in one verified file
  (``cnnbook.cifar_pack``; about 18 MB);
* ``gpu_data/torch/hub/checkpoints/mobilenet_v2-b0353104.pth``: the ImageNet weights of
  chapters 11-13 (14 MB; leave out with ``--no-weights``), found by ``TORCH_HOME=gpu_data/torch``;
* ``gpu_data/pylib/tqdm``: a copy of the pure-Python progress bar package, for a machine
  whose Python has torch but not tqdm (``make gpu-check`` puts it last on PYTHONPATH).

It stops if the folder would exceed 64 MiB, the most a device machine takes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "utils"))

from cnnbook.cifar_pack import PACK_NAME, PackedCIFAR10, pack_cifar10  # noqa: E402

LIMIT_BYTES = 64 * 2**20
WEIGHTS = "mobilenet_v2-b0353104.pth"


def _mirror() -> Path:
    env = os.environ.get("CNNBOOK_DATA_DIR", "").strip()
    return Path(env) if env else ROOT.parent / "shared" / "data"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_data"), help="folder to write")
    p.add_argument("--source", type=Path, default=None, help="the cifar10-jpg folder")
    p.add_argument("--weights", type=Path, default=None, help=f"the {WEIGHTS} file to copy")
    p.add_argument("--no-weights", action="store_true", help="do not copy the weights")
    args = p.parse_args(argv)
    source = args.source or _mirror() / "cifar10-jpg"
    pack = pack_cifar10(source, args.out / PACK_NAME)
    sizes = {split: len(PackedCIFAR10(pack, split)) for split in ("train", "test")}
    print(f"{pack}: {pack.stat().st_size / 1e6:.1f} MB, {sizes} images (SHA-256 verified)")
    if not args.no_weights:
        weights = args.weights or _mirror() / "torch" / "hub" / "checkpoints" / WEIGHTS
        target = args.out / "torch" / "hub" / "checkpoints" / WEIGHTS
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, target)
        print(f"{target}: {target.stat().st_size / 1e6:.1f} MB")
    try:
        import tqdm
    except ImportError:
        print("tqdm is not installed here, so it is not copied")
    else:
        target = args.out / "pylib" / "tqdm"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            Path(tqdm.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__")
        )
        print(f"{target}: tqdm {tqdm.__version__}")
    total = folder_bytes(args.out)
    print(f"{args.out}: {total / 2**20:.1f} MiB in all (a device machine takes at most 64 MiB)")
    if total > LIMIT_BYTES:
        print(f"error: {args.out} is over 64 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
