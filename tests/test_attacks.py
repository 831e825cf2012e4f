"""cnnbook.attacks: FGSM against a hand-made sign-gradient step, PGD's projection, attacks
raising the loss, adversarial training, corruptions against torchvision, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook.attacks import (
    BLUR_SIGMA,
    NOISE_STD,
    accuracy_under_attack,
    adversarial_step,
    adversarial_training,
    blur,
    corrupt,
    fgsm,
    gaussian_blur,
    gaussian_noise,
    input_gradient,
    pgd,
)
from cnnbook.history import History
from cnnbook.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """(N, 1, 8, 8) in [0, 1] -> (N, 3) logits."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # (N, 4, 8, 8)
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),  # (N, 8, 4, 4)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16, 3),
    )


def patterns(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of 8x8 noise images: plain, top half brighter, left half brighter."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    X = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    X[y == 1, :, :4] += 0.4
    X[y == 2, :, :, :4] += 0.4
    return X, y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny CNN trained on 384 pattern images, and 96 test images."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the per-test one_thread fixture
    try:
        model = tiny_cnn()
        fit(model, patterns(0, 384), epochs=20, lr=1e-2, batch_size=32, progress=False)
    finally:
        torch.set_num_threads(threads)
    return model.eval(), *patterns(1, 96)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


def test_fgsm_is_a_sign_gradient_step(trained):
    model, X, y = trained
    x = X[:16].clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y[:16])
    loss.backward()
    manual = (X[:16] + 0.1 * x.grad.sign()).clamp(0, 1)
    assert torch.equal(fgsm(model, X[:16], y[:16], 0.1), manual)
    unclipped = fgsm(model, X[:16], y[:16], 0.1, clamp=None)
    assert torch.equal(unclipped, X[:16] + 0.1 * x.grad.sign())
    assert torch.equal(input_gradient(model, X[:16], y[:16]).sign(), x.grad.sign())


@settings(max_examples=12, deadline=None)
@given(
    epsilon=st.floats(0.0, 0.5),
    steps=st.integers(1, 6),
    random_start=st.booleans(),
    seed=st.integers(0, 100),
)
def test_pgd_stays_in_the_epsilon_ball_and_the_box(trained, epsilon, steps, random_start, seed):
    model, X, y = trained
    x = X[:24]
    x_adv = pgd(model, x, y[:24], epsilon, steps=steps, random_start=random_start, seed=seed)
    assert (x_adv - x).abs().max().item() <= epsilon + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    assert not x_adv.requires_grad


def test_attacks_increase_the_loss(trained):
    model, X, y = trained
    clean = _loss(model, X, y)
    after_fgsm = _loss(model, fgsm(model, X, y, 0.15), y)
    after_pgd = _loss(model, pgd(model, X, y, 0.15, steps=10), y)
    assert after_fgsm > clean + 0.1
    assert after_pgd > clean + 0.1
    assert after_pgd >= after_fgsm - 1e-3, "10 PGD steps should do at least as well as FGSM"


def test_pgd_without_random_start_and_one_full_step_is_fgsm(trained):
    model, X, y = trained
    one_step = pgd(model, X, y, 0.07, steps=1, alpha=0.07, random_start=False)
    assert torch.allclose(one_step, fgsm(model, X, y, 0.07), atol=1e-7)
    a = pgd(model, X, y, 0.05, steps=3, seed=4)
    assert torch.equal(a, pgd(model, X, y, 0.05, steps=3, seed=4)), "seeded random start"
    assert not torch.equal(a, pgd(model, X, y, 0.05, steps=3, seed=5))


def test_attacks_leave_weights_grads_and_mode_alone(trained):
    model, X, y = trained
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    fgsm(model, X, y, 0.1)
    pgd(model, X, y, 0.1, steps=2)
    assert model.training, "the model's mode must be restored"
    assert all(p.grad is None for p in model.parameters()), "no weight gradients"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    model.eval()


def test_accuracy_under_attack(trained):
    model, X, y = trained
    with torch.no_grad():
        clean = (model(X).argmax(1) == y).float().mean().item()
    assert clean > 0.9, "the tiny model should learn the three patterns"
    assert accuracy_under_attack(model, (X, y), "fgsm", 0.0) == pytest.approx(clean)
    small = accuracy_under_attack(model, (X, y), "fgsm", 0.15, batch_size=40)
    large = accuracy_under_attack(model, (X, y), "pgd", 0.3, steps=10)
    assert large < small <= clean and large < 0.5

    def do_nothing(model, x, y, epsilon):
        return x

    assert accuracy_under_attack(model, (X, y), do_nothing, 0.3) == pytest.approx(clean)


def test_adversarial_training_makes_the_model_more_robust(trained):
    plain, X, y = trained
    robust = tiny_cnn()
    history = adversarial_training(
        robust, patterns(0, 384), epochs=20, epsilon=0.15, lr=1e-2, batch_size=32, progress=False
    )
    assert isinstance(history, History) and len(history) == 20
    assert history.train_acc[-1] > history.train_acc[0]
    attacked_plain = accuracy_under_attack(plain, (X, y), "pgd", 0.15)
    attacked_robust = accuracy_under_attack(robust, (X, y), "pgd", 0.15)
    assert attacked_robust > 0.9 and attacked_robust > attacked_plain + 0.15


def test_adversarial_step_updates_the_weights(trained):
    _, X, y = trained
    model = tiny_cnn(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss, correct = adversarial_step(model, optimizer, X, y, 0.1)
    assert loss > 0 and 0 <= correct <= len(y)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ----------------------------------------------------------------------------- corruptions


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_blur_matches_torchvision(sigma):
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    radius = max(1, int(np.ceil(3 * sigma)))
    ref = TF.gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
    assert torch.allclose(blur(x, sigma), ref, atol=1e-5)


def test_corruptions_keep_the_pixel_range_and_grow_with_severity():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    flat = torch.full((1, 1, 28, 28), 0.5)
    noise_err, blur_err = [], []
    for severity in range(1, 6):
        noisy = gaussian_noise(flat, severity, seed=3)
        assert noisy.min() >= 0 and noisy.max() <= 1
        if NOISE_STD[severity - 1] <= 0.2:  # stronger noise is visibly clipped at 0 and 1
            assert (noisy - flat).std().item() == pytest.approx(NOISE_STD[severity - 1], rel=0.1)
        noise_err.append((noisy - flat).abs().mean().item())
        blurred = gaussian_blur(x, severity)
        assert torch.allclose(gaussian_blur(flat, severity), flat, atol=1e-6), "flat stays flat"
        blur_err.append((blurred - x).abs().mean().item())
    assert noise_err == sorted(noise_err) and blur_err == sorted(blur_err)
    assert len(BLUR_SIGMA) == len(NOISE_STD) == 5
    assert torch.equal(corrupt(x, "gaussian_noise", 2, seed=1), gaussian_noise(x, 2, seed=1))
    assert torch.equal(corrupt(x, "gaussian_blur", 2), gaussian_blur(x, 2))
    assert not torch.equal(gaussian_noise(x, 2, seed=1), gaussian_noise(x, 2, seed=2))


# ----------------------------------------------------------------------------- bad input


def test_bad_epsilon_names_the_argument(trained):
    model, X, y = trained
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        fgsm(model, X, y, -0.1)
    with pytest.raises(ValueError, match="epsilon"):
        pgd(model, X, y, float("nan"))
    with pytest.raises(TypeError, match="epsilon"):
        fgsm(model, X, y, "0.1")
    with pytest.raises(ValueError, match="epsilon"):
        accuracy_under_attack(model, (X, y), "fgsm", -1)
    with pytest.raises(ValueError, match="alpha"):
        pgd(model, X, y, 0.1, alpha=-0.01)
    with pytest.raises(ValueError, match="steps"):
        pgd(model, X, y, 0.1, steps=0)


@pytest.mark.parametrize(
    ("x", "error", "text"),
    [
        (np.zeros((2, 1, 8, 8), dtype=np.float32), TypeError, "x must be a torch.Tensor"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), TypeError, "x must hold floats"),
        (torch.zeros(2, 8, 8), ValueError, r"x must have shape \(N, C, H, W\)"),
    ],
)
def test_bad_images_name_the_argument(trained, x, error, text):
    model, _, _ = trained
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(error, match=text):
        fgsm(model, x, y, 0.1)
    with pytest.raises(error, match=text):
        pgd(model, x, y, 0.1)
    with pytest.raises(error, match=text):
        gaussian_noise(x, 1)


def test_other_bad_arguments(trained):
    model, X, y = trained
    with pytest.raises(ValueError, match="y must have 96 entries"):
        fgsm(model, X, y[:10], 0.1)
    with pytest.raises(TypeError, match="y must hold integer"):
        fgsm(model, X, y.float(), 0.1)
    with pytest.raises(ValueError, match="attack"):
        accuracy_under_attack(model, (X, y), "deepfool", 0.1)
    with pytest.raises(TypeError, match="data"):
        accuracy_under_attack(model, X, "fgsm", 0.1)
    with pytest.raises(ValueError, match="clamp"):
        fgsm(model, X, y, 0.1, clamp=(1, 0))
    with pytest.raises(TypeError, match="model"):
        fgsm("model", X, y, 0.1)
    with pytest.raises(ValueError, match="severity"):
        gaussian_noise(X, 6)
    with pytest.raises(ValueError, match="severity"):
        gaussian_blur(X, 0)
    with pytest.raises(ValueError, match="kind"):
        corrupt(X, "fog", 1)
    with pytest.raises(TypeError, match="optimizer"):
        adversarial_step(model, "sgd", X, y, 0.1)
    with pytest.raises(ValueError, match="epochs"):
        adversarial_training(model, (X, y), epochs=0, epsilon=0.1)
