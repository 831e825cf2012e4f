"""Images per second of the chapter-10 ResNet trainer against a plain PyTorch loop, in one run.

    python benchmarks/resnet_throughput.py [--width 16] [--images 4096] [--batch-size 256]
        [--epochs 2] [--threads N] [--repeats 2]

All rows train the same network (``cifar_resnet(width)``) on the same real CIFAR-10
images, with flip + translate augmentation, for the same number of images:

- **plain loop**: the textbook way. A ``DataLoader`` over a Dataset that augments each
  image on its own (torchvision ``RandomCrop(padding=2)`` + ``RandomHorizontalFlip``),
  float32, NCHW, ``optimizer.zero_grad(); loss.backward(); optimizer.step()``;
- **fast trainer, NCHW**: ``cnnbook.fast_train.train_fast``: data held in memory as one
  tensor, batched augmentation, Nesterov SGD + one-cycle + label smoothing + EMA;
- **fast trainer, channels_last**: the same with the NHWC memory layout.

Mixed precision is off in all rows (the trainer enables it on CUDA only). The first
epoch of each row is a warm-up and is not timed; the best of ``--repeats`` timed epochs
counts, which damps the noise of a shared machine. Use ``CNNBOOK_DATA_DIR`` /
``CNNBOOK_OFFLINE=1`` to read the offline data mirror.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from here)
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from cnnbook.data import as_tensors, cifar10
from cnnbook.fast_recipe import Recipe
from cnnbook.fast_train import train_fast
from cnnbook.models.cifar_resnet import cifar_resnet


class AugmentedImages(Dataset):
    """(X (N, C, H, W) float in [0, 1], y (N,)) with per-image random crop and flip."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, pad: int) -> None:
        self.X, self.y = X, y
        self.transform = v2.Compose(
            [
                v2.RandomCrop(X.shape[-1], padding=pad, padding_mode="reflect"),
                v2.RandomHorizontalFlip(),
            ]
        )

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.X[i]), self.y[i]


def plain_loop(model: nn.Module, X, y, *, batch_size: int, epochs: int, seed: int) -> list[float]:
    """Train with a DataLoader the plain way; return images/s of each epoch."""
    loader = DataLoader(
        AugmentedImages(X, y, pad=2),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += len(yb)
        rates.append(n / (time.perf_counter() - start))
    return rates


def fast_trainer(
    model: nn.Module, train, test, *, batch_size: int, epochs: int, channels_last: bool, seed: int
) -> list[float]:
    """Train with cnnbook.fast_train; return images/s of each epoch."""
    recipe = Recipe(
        epochs=epochs, batch_size=batch_size, channels_last=channels_last, seed=seed, tta=False
    )
    result = train_fast(model, train, test, recipe, device="cpu", progress=False)
    images = (len(train[1]) // batch_size) * batch_size
    return [images / row["epoch_seconds"] for row in result.epochs]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=16, help="ResNet width (64 = ResNet-9)")
    p.add_argument("--images", type=int, default=4096, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="timed epochs per row (best counts)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if min(args.width, args.images, args.batch_size, args.repeats) < 1:
        p.error("--width, --images, --batch-size and --repeats must be >= 1")
    if args.images < args.batch_size:
        p.error("--images must be at least --batch-size")
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = parse_args()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    train = as_tensors(cifar10(train=True), limit=args.images, seed=args.seed)
    test = as_tensors(cifar10(train=False), limit=256, seed=args.seed)
    n_params = sum(p.numel() for p in cifar_resnet(args.width).parameters())
    print(
        f"model: cifar_resnet({args.width}), {n_params:,} parameters; {args.images} CIFAR-10 "
        f"images per epoch, batch {args.batch_size}, float32, 1 warm-up + {args.repeats} "
        "timed epochs per row\n"
    )
    epochs = 1 + args.repeats
    rows = []
    torch.manual_seed(args.seed)
    rates = plain_loop(
        cifar_resnet(args.width), *train, batch_size=args.batch_size, epochs=epochs, seed=args.seed
    )
    rows.append(("plain loop (DataLoader, per-image transforms)", "NCHW", max(rates[1:])))
    for channels_last in (False, True):
        torch.manual_seed(args.seed)
        rates = fast_trainer(
            cifar_resnet(args.width),
            train,
            test,
            batch_size=args.batch_size,
            epochs=epochs,
            channels_last=channels_last,
            seed=args.seed,
        )
        layout = "channels_last" if channels_last else "NCHW"
        rows.append(("fast trainer (cnnbook.fast_train)", layout, max(rates[1:])))

    base = rows[0][2]
    print("| pipeline | memory layout | images/s | relative to plain loop |")
    print("|---|---|---:|---:|")
    for name, layout, rate in rows:
        print(f"| {name} | {layout} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
