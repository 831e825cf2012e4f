"""CPU smoke test of the full-profile code paths, a few optimizer steps each.

``CNNBOOK_MAX_STEPS`` caps every training loop of the library; under it these tests run
the full-profile configurations at library level (not the chapter notebooks, which would
also evaluate and plot at full size): chapter 10's ResNet-9 with its FULL recipe on real
CIFAR-10 images, float16 autocast with a GradScaler (the Colab T4 branch, forced onto
the CPU), channels_last, torch.compile on (aot_eager backend) and off, ``fit`` with a
per-batch one-cycle schedule (chapters 7, 12, 14, 18) and adversarial training (chapter
14). Not covered on a CPU: ``fit``'s own amp flag (CUDA-only float16 autocast) and
inductor's code generation.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnbook import fast_train, runtime
from cnnbook.attacks import adversarial_training
from cnnbook.fast_recipe import Recipe
from cnnbook.models.cifar_resnet import cifar_resnet
from cnnbook.train import fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gpu_check import headline_settings  # noqa: E402

CAP = 2


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv("CNNBOOK_MAX_STEPS", str(CAP))


@pytest.fixture(scope="module")
def cifar_batch():
    """64 real CIFAR-10 training and 32 test images as uint8, from the offline mirror."""
    from cnnbook.data import DatasetNotFoundError, as_tensors, cifar10

    try:
        train, test = cifar10(train=True), cifar10(train=False)
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 is not available (set CNNBOOK_DATA_DIR)")
    X, y = as_tensors(train, limit=64, seed=0)
    X_test, y_test = as_tensors(test, limit=32, seed=0)
    u8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
    return (u8(X), y), (u8(X_test), y_test)


def test_max_steps_reads_the_environment(monkeypatch):
    monkeypatch.delenv("CNNBOOK_MAX_STEPS", raising=False)
    assert runtime.max_steps() is None and not runtime.steps_capped()
    monkeypatch.setenv("CNNBOOK_MAX_STEPS", "3")
    assert runtime.max_steps() == 3 and runtime.steps_capped()
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("CNNBOOK_MAX_STEPS", bad)
        with pytest.raises(ValueError, match="CNNBOOK_MAX_STEPS"):
            runtime.max_steps()


def _resnet9_full_recipe(**changes) -> Recipe:
    """Chapter 10's FULL recipe with a CPU-sized batch (everything else as on the GPU)."""
    return replace(headline_settings()["recipe"], batch_size=16, **changes)


def test_headline_resnet9_full_recipe_float32_channels_last(capped, cifar_batch):
    train, test = cifar_batch
    torch.manual_seed(0)
    model = cifar_resnet(headline_settings()["width"])  # the real ResNet-9, 6.6 M parameters
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS"):
        result = fast_train.train_fast(
            model, train, test, _resnet9_full_recipe(channels_last=True), progress=False
        )
    assert result.steps == CAP and len(result.epochs) == 1  # 24 epochs planned, 2 steps run
    assert result.channels_last and not result.amp
    assert torch.isfinite(torch.tensor(result.epochs[0]["train_loss"]))
    assert 0 <= result.test_acc <= 1 and result.images_per_second > 0


def test_t4_branch_chooses_float16_with_a_grad_scaler(monkeypatch):
    """A Colab T4 has CUDA but no bfloat16: the trainer must pick float16 + GradScaler."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert fast_train._amp_dtype(torch.device("cuda")) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert fast_train._amp_dtype(torch.device("cuda")) == torch.bfloat16
    assert fast_train._resolve_flags(Recipe(), torch.device("cuda")) == (True, True)
    with pytest.warns(UserWarning, match="amp=True needs a CUDA device"):
        flags = fast_train._resolve_flags(Recipe(amp=True), torch.device("cpu"))
    assert flags == (False, False)


def test_float16_grad_scaler_step_runs_on_cpu(capped, cifar_batch, monkeypatch):
    """The T4 code path (autocast float16, scaled backward, scaler.step/update) forced onto
    the CPU, where autocast supports float16: the same lines the GPU runs."""
    scalers = []

    class SpyScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scalers.append(self)

    monkeypatch.setattr(fast_train, "_resolve_flags", lambda recipe, dev: (True, True))
    monkeypatch.setattr(fast_train, "_amp_dtype", lambda dev: torch.float16)
    monkeypatch.setattr(torch.amp, "GradScaler", SpyScaler)
    train, test = cifar_batch
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS"):
        result = fast_train.train_fast(
            cifar_resnet(16), train, test, _resnet9_full_recipe(), progress=False
        )
    assert result.amp and result.steps == CAP
    assert len(scalers) == 1 and scalers[0].is_enabled()
    assert scalers[0]._get_growth_tracker() == CAP  # two finite, scaled, stepped updates


def test_compile_on_runs_two_steps(capped, cifar_batch, monkeypatch):
    """compile=True: TorchDynamo traces the training step and AOTAutograd builds the
    backward graph. The test swaps inductor (the default backend, which the GPU uses) for
    ``aot_eager``: inductor's C++ code generation took 215 s here for two steps."""
    compiled = []
    real_compile = torch.compile

    def compile_aot_eager(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_aot_eager)
    train, test = cifar_batch
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS"):
        result = fast_train.train_fast(
            cifar_resnet(4), train, test, _resnet9_full_recipe(compile=True), progress=False
        )
    assert result.steps == CAP and torch.isfinite(torch.tensor(result.test_acc))
    assert len(compiled) == 1, "train_fast should have compiled the model once"


def test_fit_stops_after_the_cap_with_a_one_cycle_schedule(capped):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    X, y = torch.randn(256, 1, 8, 8), torch.randint(0, 10, (256,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 5e-3, total_steps=10 * 8)
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS stopped training after 2"):
        history = fit(model, (X, y), (X[:64], y[:64]), epochs=10, optimizer=optimizer,
                      scheduler=scheduler, batch_size=32, progress=False)  # fmt: skip
    assert len(steps) == CAP and len(history) == 1 and len(history.val_acc) == 1


def test_adversarial_training_stops_after_the_cap(capped):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    X, y = torch.rand(256, 1, 8, 8), torch.randint(0, 10, (256,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS"):
        history = adversarial_training(
            model, (X, y), epochs=3, epsilon=0.1, optimizer=optimizer, batch_size=32,
            progress=False,
        )  # fmt: skip
    assert len(steps) == CAP and len(history) == 1
