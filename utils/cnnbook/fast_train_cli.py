"""Command line of the fast trainer: train the CIFAR-10 ResNet of chapter 10 and report.

On one device::

    python -m cnnbook.fast_train_cli --epochs 10 --width 64

or on several GPUs (or CPU processes, with the gloo backend) with torchrun::

    torchrun --standalone --nproc_per_node=2 -m cnnbook.fast_train_cli --epochs 10 --width 64

``python -m cnnbook.fast_train`` (and ``torchrun ... -m cnnbook.fast_train``) runs the same
command line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cnnbook.distributed import close_distributed, init_distributed
from cnnbook.fast_recipe import Recipe
from cnnbook.fast_train import FastResult, train_fast

__all__ = ["main", "parse_args", "recipe_from_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cnnbook.fast_train_cli",
        description="Train the CIFAR-10 ResNet with the fast recipe (also under torchrun).",
    )
    defaults = Recipe()
    data = p.add_argument_group("data and model")
    data.add_argument("--train-limit", type=int, default=None, help="seeded subset (default all)")
    data.add_argument("--test-limit", type=int, default=None, help="seeded subset (default all)")
    data.add_argument("--data-seed", type=int, default=0, help="seed of the subsets")
    data.add_argument("--width", type=int, default=16, help="ResNet width (64 = ResNet-9)")
    data.add_argument("--blocks", type=str, default="1,0,1", help="residual blocks per stage")
    data.add_argument("--device", type=str, default=None, help="default: CUDA if present")
    r = p.add_argument_group("recipe")
    for name in ("epochs", "batch_size", "pad", "eval_every", "seed"):
        r.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup"):
        r.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    r.add_argument("--ema-decay", type=float, default=defaults.ema_decay, help="0: no EMA")
    r.add_argument("--target-acc", type=float, default=None)
    r.add_argument("--no-flip", dest="flip", action="store_false")
    r.add_argument("--no-tta", dest="tta", action="store_false")
    r.add_argument("--amp", choices=("auto", "on", "off"), default="auto")
    r.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, default=None, help="write the results here (rank 0)")
    out.add_argument("--checkpoint", type=Path, default=None, help="save the final model here")
    out.add_argument(
        "--rank-states", type=Path, default=None, help="every rank saves rank<r>.pt here (tests)"
    )
    out.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """A Recipe from parsed command-line arguments (bad values raise ValueError/TypeError)."""
    tri = {"auto": None, "on": True, "off": False}
    return Recipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        warmup=args.warmup,
        pad=args.pad,
        flip=args.flip,
        ema_decay=args.ema_decay if args.ema_decay else None,
        tta=args.tta,
        amp=tri[args.amp],
        channels_last=tri[args.channels_last],
        compile=args.compile,
        eval_every=args.eval_every,
        target_acc=args.target_acc,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """Load CIFAR-10, train, print and save the results; returns the summary (rank 0)."""
    from cnnbook.data import as_tensors, cifar10
    from cnnbook.models.cifar_resnet import cifar_resnet

    args = parse_args(argv)
    recipe = recipe_from_args(args)
    blocks = tuple(int(b) for b in args.blocks.split(","))
    ctx = init_distributed()
    try:
        train = as_tensors(cifar10(train=True), limit=args.train_limit, seed=args.data_seed)
        test = as_tensors(cifar10(train=False), limit=args.test_limit, seed=args.data_seed)
        torch.manual_seed(recipe.seed)  # the same initial weights on every rank
        model = cifar_resnet(args.width, blocks)
        result = train_fast(
            model,
            train,
            test,
            recipe,
            device=args.device,
            progress=args.progress,
            on_epoch=None if args.progress else _print_row,
        )
        summary = result.summary() | {"recipe": asdict(recipe), "width": args.width}
        if args.rank_states is not None:
            args.rank_states.mkdir(parents=True, exist_ok=True)
            state = {k: v.cpu() for k, v in result.final_model.state_dict().items()}
            torch.save(state, args.rank_states / f"rank{ctx.rank}.pt")
        if ctx.rank == 0:
            _report(result, summary, args)
        return summary
    finally:
        close_distributed(ctx)


def _print_row(row: dict) -> None:
    text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
    print(text, flush=True)


def _report(result: FastResult, summary: dict, args: argparse.Namespace) -> None:
    print(
        f"test accuracy {result.test_acc:.4f} | {result.images_per_second:,.0f} images/s | "
        f"{result.train_seconds:.1f} s training | {result.world_size} process(es) on "
        f"{result.device} | amp {result.amp} | channels_last {result.channels_last}",
        flush=True,
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1, default=_jsonable))
    if args.checkpoint is not None:
        from cnnbook.checkpoints import save_checkpoint

        save_checkpoint(args.checkpoint, result.final_model, result.to_history())


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
