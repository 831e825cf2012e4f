"""cnnbook.fast_train, cnnbook.fast_recipe and cnnbook.models.cifar_resnet: schedule, EMA,
TTA, the trainer on a small real CIFAR-10 subset (determinism, flags), and bad arguments.
(The batched augmentation is tested in test_batch_augment, the command line in
test_fast_train_cli.)"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from cnnbook import fast_train
from cnnbook.checkpoints import load_checkpoint, save_checkpoint
from cnnbook.fast_recipe import Recipe
from cnnbook.fast_train import EMA, evaluate_fast, lr_factor, predict_logits, train_fast
from cnnbook.models.cifar_resnet import CifarResNet, cifar_resnet, resnet9

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cifar_small():
    """A seeded real CIFAR-10 subset: 768 training and 500 test images (skips without data)."""
    from cnnbook.data import DatasetNotFoundError, as_tensors, cifar10

    try:
        train = as_tensors(cifar10(train=True), limit=768, seed=1)
        test = as_tensors(cifar10(train=False), limit=500, seed=1)
    except DatasetNotFoundError as err:  # pragma: no cover - CI has the data
        pytest.skip(f"CIFAR-10 is not available: {err}")
    return train, test


def tiny_net(seed: int = 0) -> CifarResNet:
    torch.manual_seed(seed)
    return CifarResNet((4, 8, 8, 16), (0, 0, 1))


QUICK = {"epochs": 2, "batch_size": 128, "lr": 0.2, "ema_decay": 0.9}


# ----------------------------------------------------------------------------- schedule


def test_lr_factor_is_a_warmup_then_decay_triangle():
    total, warmup = 100, 0.2
    f = np.array([lr_factor(s, total, warmup) for s in range(total)])
    peak = int(np.argmax(f))
    assert peak == 20 and f[peak] == pytest.approx(1.0)
    assert np.all(np.diff(f[: peak + 1]) > 0), "the factor should rise during warm-up"
    assert np.all(np.diff(f[peak:]) < 0), "and fall after it"
    assert 0 < f[0] < 0.1 and 0 < f[-1] < 0.02 and np.all(f > 0) and np.all(f <= 1)
    assert lr_factor(total, total, warmup) == 0.0, "the factor reaches 0 at the end"
    # warmup=0: start at the peak and decay linearly.
    assert lr_factor(0, 10, 0.0) == 1.0 and lr_factor(5, 10, 0.0) == pytest.approx(0.5)


def test_trainer_follows_the_schedule(cifar_small):
    train, test = cifar_small
    recipe = Recipe(**(QUICK | {"epochs": 3, "warmup": 0.5, "ema_decay": None, "tta": False}))
    result = train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    steps = 768 // 128
    lrs = [row["lr"] for row in result.epochs]
    expected = [0.2 * lr_factor(e * steps, 3 * steps, 0.5) for e in range(3)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- EMA


def test_ema_follows_the_formula_with_warmup():
    model = nn.Linear(3, 1)
    ema = EMA(model, decay=0.9)
    expected = model.weight.detach().clone()
    for t in range(30):
        with torch.no_grad():
            model.weight.add_(torch.randn(1, 3))  # pretend an optimizer step
        d = min(0.9, (1 + t) / (10 + t))
        assert ema.decay_at(t) == pytest.approx(d)
        expected = d * expected + (1 - d) * model.weight.detach()
        ema.update(model)
    torch.testing.assert_close(ema.module.weight, expected)
    assert ema.updates == 30 and not ema.module.weight.requires_grad


def test_ema_of_a_constant_is_the_constant_and_buffers_are_handled():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.train()
    model(torch.randn(4, 1, 5, 5))  # running statistics move away from 0 / 1
    ema = EMA(model, decay=0.5)
    for _ in range(3):
        ema.update(model)
    for (name, a), b in zip(
        ema.module.state_dict().items(), model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=f"{name} should equal the unchanged model's")
    assert ema.module[1].num_batches_tracked.item() == 1, "integer buffers are copied"


def test_ema_smooths_noise():
    # Weights jump around a fixed value: the average should be much closer to it.
    torch.manual_seed(0)
    model = nn.Linear(50, 1, bias=False)
    ema = EMA(model, decay=0.95)
    for _ in range(300):
        with torch.no_grad():
            model.weight.copy_(1.0 + torch.randn(1, 50))
        ema.update(model)
    err_raw = (model.weight - 1).abs().mean().item()
    err_ema = (ema.module.weight - 1).abs().mean().item()
    assert err_ema < err_raw / 3, f"EMA error {err_ema:.3f} vs raw {err_raw:.3f}"


# ----------------------------------------------------------------------------- TTA


def test_tta_is_the_mean_of_the_image_and_its_mirror():
    model = tiny_net().eval()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    tta = predict_logits(model, x, tta=True, batch_size=4)
    with torch.no_grad():
        expected = 0.5 * (model(x) + model(x.flip(3)))
    torch.testing.assert_close(tta, expected)
    # Averaging over a flip makes the prediction blind to that flip.
    torch.testing.assert_close(predict_logits(model, x.flip(3), tta=True), tta)
    assert not torch.allclose(predict_logits(model, x), tta), "a random net is not symmetric"


def test_predict_logits_accepts_uint8_and_restores_training_mode():
    model = tiny_net()
    model.train()
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    got = predict_logits(model, x)
    assert model.training, "the model should be back in training mode"
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(got, model(x.float() / 255))


# ----------------------------------------------------------------------------- trainer


def test_trainer_learns_and_is_deterministic(cifar_small):
    train, test = cifar_small
    recipe = Recipe(**QUICK)
    r1 = train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    r2 = train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    assert [row["train_loss"] for row in r1.epochs] == [row["train_loss"] for row in r2.epochs]
    for p1, p2 in zip(r1.model.parameters(), r2.model.parameters(), strict=True):
        assert torch.equal(p1, p2), "the same seed should give the same weights"
    assert r1.test_acc == r2.test_acc and 0.15 < r1.test_acc <= 1, f"got {r1.test_acc}"
    assert r1.epochs[-1]["train_loss"] < r1.epochs[0]["train_loss"], "the loss should fall"
    assert r1.images_per_second > 0 and r1.train_seconds > 0
    assert r1.ema_model is not None and r1.final_model is r1.ema_model
    assert r1.test_acc == evaluate_fast(r1.ema_model, test, tta=True)
    assert not r1.amp and not r1.channels_last, "AMP and channels_last are off on a CPU"
    r3 = train_fast(tiny_net(), train, test, Recipe(**(QUICK | {"seed": 1})), progress=False)
    assert r3.epochs[0]["train_loss"] != r1.epochs[0]["train_loss"], "the seed should matter"


def test_eval_every_and_time_to_target(cifar_small):
    train, test = cifar_small
    recipe = Recipe(**(QUICK | {"eval_every": 1, "target_acc": 0.0}))
    result = train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    assert all("test_acc" in row for row in result.epochs)
    assert result.time_to_target == result.epochs[0]["seconds"], "0% is reached after epoch 1"
    never = Recipe(**(QUICK | {"target_acc": 1.0}))
    assert train_fast(tiny_net(), train, test, never, progress=False).time_to_target is None


def test_channels_last_on_cpu_and_amp_warning(cifar_small):
    train, test = cifar_small
    recipe = Recipe(**(QUICK | {"epochs": 1, "channels_last": True, "amp": True}))
    with pytest.warns(UserWarning, match="amp=True needs a CUDA device"):
        result = train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    assert result.channels_last and not result.amp
    conv = result.model.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert math.isfinite(result.test_acc)


def test_compile_flag_wraps_the_model(cifar_small, monkeypatch):
    train, test = cifar_small
    calls = []

    def fake_compile(module):  # torch.compile itself takes far too long for a unit test
        calls.append(module)
        return module

    monkeypatch.setattr(fast_train.torch, "compile", fake_compile)
    recipe = Recipe(**(QUICK | {"epochs": 1, "compile": True}))
    train_fast(tiny_net(), train, test, recipe, device="cpu", progress=False)
    assert len(calls) == 1 and isinstance(calls[0], CifarResNet)


def test_uint8_data_trains_like_float_data(cifar_small):
    (X, y), test = cifar_small
    X8 = (X * 255).round().to(torch.uint8)
    recipe = Recipe(**(QUICK | {"epochs": 1}))
    r_float = train_fast(tiny_net(), ((X8.float() / 255), y), test, recipe, progress=False)
    r_uint8 = train_fast(tiny_net(), (X8, y), test, recipe, progress=False)
    assert r_uint8.epochs[0]["train_loss"] == pytest.approx(r_float.epochs[0]["train_loss"])


def test_history_and_checkpoint_round_trip(cifar_small, tmp_path):
    train, test = cifar_small
    result = train_fast(tiny_net(), train, test, Recipe(**QUICK), progress=False)
    history = result.to_history()
    assert len(history) == 2 and history.train_loss == [r["train_loss"] for r in result.epochs]
    path = save_checkpoint(tmp_path / "fast.pt", result.final_model, history)
    fresh = tiny_net(seed=5)
    loaded = load_checkpoint(path, fresh)
    assert loaded.train_acc == history.train_acc
    assert evaluate_fast(fresh, test, tta=True) == result.test_acc


# ----------------------------------------------------------------------------- the model


def test_resnet9_size_and_shapes():
    model = resnet9()
    n = sum(p.numel() for p in model.parameters())
    assert n == 6_573_120, f"ResNet-9 should have 6,573,120 parameters, got {n:,}"
    assert cifar_resnet(64).widths == model.widths == (64, 128, 256, 512)
    small = cifar_resnet(8, (1, 1, 1))
    x = torch.rand(2, 3, 32, 32)
    assert small(x).shape == (2, 10) and small.features(x).shape == (2, 64)
    assert CifarResNet((4, 8, 8, 16), num_classes=3)(torch.rand(1, 3, 24, 40)).shape == (1, 3)


def test_model_standardises_its_input():
    model = CifarResNet((4, 8, 8, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).eval()
    shifted = CifarResNet((4, 8, 8, 16), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).eval()
    shifted.load_state_dict(model.state_dict() | {"mean": shifted.mean, "std": shifted.std})
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), shifted((x - 0.5) / 0.25))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.5}, TypeError, "epochs"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"lr": 0}, ValueError, "lr"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
        ({"label_smoothing": 1.0}, ValueError, "label_smoothing"),
        ({"warmup": 1.5}, ValueError, "warmup"),
        ({"pad": -1}, ValueError, "pad"),
        ({"flip": "yes"}, TypeError, "flip"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"amp": 1}, TypeError, "amp"),
        ({"channels_last": "auto"}, TypeError, "channels_last"),
        ({"compile": None}, TypeError, "compile"),
        ({"target_acc": 2.0}, ValueError, "target_acc"),
        ({"eval_every": -1}, ValueError, "eval_every"),
        ({"seed": -3}, ValueError, "seed"),
    ],
)
def test_bad_recipes_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        Recipe(**kwargs)


def test_bad_trainer_inputs_name_the_argument(cifar_small):
    train, test = cifar_small
    X, y = train
    net = tiny_net()
    quiet = {"progress": False}
    with pytest.raises(TypeError, match="model"):
        train_fast("resnet", train, test, **quiet)
    with pytest.raises(TypeError, match="recipe"):
        train_fast(net, train, test, {"epochs": 1}, **quiet)
    with pytest.raises(TypeError, match="train_data"):
        train_fast(net, X, test, **quiet)
    with pytest.raises(ValueError, match="train_data"):
        train_fast(net, (X[:, 0], y), test, **quiet)
    with pytest.raises(ValueError, match="test_data"):
        train_fast(net, train, (test[0], test[1][:-1]), **quiet)
    with pytest.raises(TypeError, match="train_data"):
        train_fast(net, (X.double().long(), y), test, **quiet)
    with pytest.raises(ValueError, match="batch_size"):
        train_fast(net, (X[:10], y[:10]), test, Recipe(batch_size=64), **quiet)
    with pytest.raises(TypeError, match="progress"):
        train_fast(net, train, test, progress=1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            train_fast(net, train, test, device="cuda", **quiet)


def test_bad_helper_arguments():
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="total_steps"):
        lr_factor(0, 0, 0.1)
    with pytest.raises(ValueError, match="warmup"):
        lr_factor(0, 10, -0.1)
    with pytest.raises(TypeError, match="model"):
        EMA("net")
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(2, 2), decay=1.5)
    with pytest.raises(TypeError, match="tta"):
        predict_logits(tiny_net(), x, tta="yes")
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(tiny_net(), x, batch_size=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"widths": (4, 8, 16)}, ValueError, "widths"),
        ({"widths": (4, 8, 16, 0)}, ValueError, "widths"),
        ({"widths": "4,8,16,32"}, TypeError, "widths"),
        ({"blocks": (1, -1, 1)}, ValueError, "blocks"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"head_scale": 0}, ValueError, "head_scale"),
        ({"head_scale": "big"}, TypeError, "head_scale"),
        ({"mean": (0.5, 0.5)}, ValueError, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, ValueError, "std"),
    ],
)
def test_bad_model_arguments_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        CifarResNet(**({"widths": (4, 8, 8, 16)} | kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good model builds silently
        CifarResNet((4, 8, 8, 16))
