"""cnnbook.train: fit/evaluate/predict on the real 8x8 digits with a tiny CNN, schedulers,
gradient clipping, checkpoints, AMP fallback, determinism and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from cnnbook.checkpoints import CheckpointCorruptError, load_checkpoint, save_checkpoint
from cnnbook.data import load_digits
from cnnbook.history import History
from cnnbook.metrics import accuracy
from cnnbook.train import evaluate, fit, predict

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    """The real digits as (N, 1, 8, 8) float32 in [0, 1], split 1400 / 397 at random."""
    images, labels = load_digits()
    order = np.random.default_rng(0).permutation(len(labels))
    X = torch.from_numpy(images[order] / 16.0).float()[:, None]
    y = torch.from_numpy(labels[order])
    return {"X_train": X[:1400], "y_train": y[:1400], "X_val": X[1400:], "y_val": y[1400:]}


def small_cnn(seed: int = 0, num_classes: int = 10, dropout: float = 0.0) -> nn.Module:
    """(N, 1, 8, 8) -> (N, num_classes): two conv blocks and a linear classifier."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),  # (N, 16, 8, 8)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1),  # (N, 32, 4, 4)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 2, 2)
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(32 * 4, num_classes),
    )


def train_pair(d, n: int | None = None):
    return d["X_train"][:n], d["y_train"][:n]


def val_pair(d):
    return d["X_val"], d["y_val"]


def history_without_times(h: History) -> dict:
    out = h.to_dict()
    out.pop("seconds")
    return out


QUIET = {"progress": False, "device": "cpu"}


# ----------------------------------------------------------------------------- learning


def test_fit_learns_digits_above_90_percent_in_3_epochs(digits):
    model = small_cnn()
    h = fit(model, train_pair(digits), val_pair(digits), epochs=3, lr=3e-3, batch_size=32, **QUIET)
    assert len(h) == 3 and len(h.val_acc) == 3 and len(h.seconds) == 3
    assert h.val_acc[-1] > 0.9, f"expected > 90% validation accuracy, got {h.val_acc[-1]:.3f}"
    assert h.train_loss[-1] < h.train_loss[0], "training loss should fall"
    # evaluate() agrees with the history's last validation entry.
    result = evaluate(model, val_pair(digits))
    assert result["accuracy"] == pytest.approx(h.val_acc[-1])
    assert result["loss"] == pytest.approx(h.val_loss[-1], rel=1e-5)


def test_dataset_and_dataloader_paths_learn(digits):
    train_set = TensorDataset(*train_pair(digits, 600))
    h1 = fit(small_cnn(), train_set, TensorDataset(*val_pair(digits)), epochs=2, lr=3e-3,
             batch_size=32, **QUIET)  # fmt: skip
    loader = DataLoader(train_set, batch_size=32, shuffle=True)
    h2 = fit(small_cnn(), loader, DataLoader(TensorDataset(*val_pair(digits)), batch_size=100),
             epochs=2, lr=3e-3, **QUIET)  # fmt: skip
    for h in (h1, h2):
        assert h.val_acc[-1] > 0.7, f"the Dataset/DataLoader path should learn, got {h.val_acc}"


def test_numpy_arrays_and_soft_targets_are_accepted(digits):
    X, y = train_pair(digits, 256)
    soft = nn.functional.one_hot(y, 10).float()  # (N, 10) probabilities, as Mixup makes
    h = fit(small_cnn(), (X.numpy().astype(np.float64), soft), epochs=1, **QUIET)
    assert len(h) == 1 and 0 <= h.train_acc[0] <= 1 and h.val_acc == []


def test_a_collate_fn_that_makes_soft_targets_is_accepted(digits):
    """Mixup/CutMix as a collate_fn: the dataset holds integer labels, batches carry (N, K)."""
    X, y = train_pair(digits, 256)

    def one_hot_collate(items):
        xs, ys = zip(*items, strict=True)
        return torch.stack(xs), nn.functional.one_hot(torch.stack(ys), 10).float()

    loader = DataLoader(TensorDataset(X, y), batch_size=32, collate_fn=one_hot_collate)
    h = fit(small_cnn(), loader, epochs=1, **QUIET)
    assert len(h) == 1 and 0 <= h.train_acc[0] <= 1


def test_a_bad_dataset_label_is_caught_even_with_soft_batches(digits):
    X, y = train_pair(digits, 64)
    y = y.clone()
    y[-1] = 12  # only in the dataset's labels, never in the first batch

    def one_hot_collate(items):
        xs, ys = zip(*items, strict=True)
        return torch.stack(xs), nn.functional.one_hot(torch.stack(ys).clamp(max=9), 10).float()

    loader = DataLoader(TensorDataset(X, y), batch_size=16, collate_fn=one_hot_collate)
    with pytest.raises(ValueError, match=r"max 12\)"):
        fit(small_cnn(), loader, epochs=1, **QUIET)


def test_same_seed_gives_identical_histories(digits):
    def run(seed: int) -> tuple[History, nn.Module]:
        model = small_cnn(dropout=0.3)
        h = fit(model, train_pair(digits, 400), val_pair(digits), epochs=2, batch_size=32,
                seed=seed, **QUIET)  # fmt: skip
        return h, model

    (h1, m1), (h2, m2), (h3, _) = run(0), run(0), run(1)
    assert history_without_times(h1) == history_without_times(h2)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    assert history_without_times(h1) != history_without_times(h3), "the seed should matter"


def test_batch_transform_sees_every_step_and_its_output_is_trained_on(digits):
    X, y = train_pair(digits, 64)
    plain = fit(small_cnn(), (X, y), epochs=2, batch_size=16, **QUIET)
    steps = []

    def identity(x, t, step):
        steps.append((step, x.shape[0], t.shape[0]))
        return x

    same = fit(small_cnn(), (X, y), epochs=2, batch_size=16, batch_transform=identity, **QUIET)
    assert steps == [(i, 16, 16) for i in range(8)], "one call per step, numbered from 0"
    assert history_without_times(same) == history_without_times(plain)

    def zeros(x, t, step):
        return torch.zeros_like(x)

    blank = fit(small_cnn(), (X, y), epochs=2, batch_size=16, batch_transform=zeros, **QUIET)
    assert history_without_times(blank) != history_without_times(plain)
    with pytest.raises(TypeError, match="batch_transform must be None or callable"):
        fit(small_cnn(), (X, y), epochs=1, batch_transform="flip", **QUIET)


def test_fit_does_not_disturb_the_callers_rng(digits):
    model = small_cnn(dropout=0.2)  # seeds torch itself, so build it first
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, train_pair(digits, 64), epochs=1, **QUIET)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- schedulers


def test_one_cycle_steps_once_per_batch(digits):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    epochs, n_batches = 2, math.ceil(300 / 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * n_batches)
    fit(model, train_pair(digits, 300), epochs=epochs, optimizer=opt, scheduler=sched,
        scheduler_step="batch", batch_size=64, **QUIET)  # fmt: skip
    assert sched.last_epoch == epochs * n_batches


def test_one_cycle_defaults_to_per_batch_and_accepts_a_factory(digits):
    def make(opt):
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)

    model = small_cnn()
    h = fit(model, train_pair(digits, 320), epochs=2, scheduler=make, batch_size=64, **QUIET)
    # 5 batches per epoch: the second epoch starts at step 5 of the cycle, not step 1.
    assert h.lr[0] == pytest.approx(0.01 / 25)  # OneCycleLR starts at max_lr / div_factor
    assert h.lr[1] > 10 * h.lr[0]


def test_step_lr_steps_once_per_epoch(digits):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, train_pair(digits, 200), epochs=3, optimizer=opt, scheduler=sched,
            scheduler_step="epoch", batch_size=64, **QUIET)  # fmt: skip
    assert sched.last_epoch == 3
    assert h.lr == pytest.approx([0.1, 0.05, 0.025])


def test_reduce_on_plateau_gets_the_validation_loss(digits):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)  # too small to progress: a plateau
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, threshold=0.5)
    h = fit(model, train_pair(digits, 128), val_pair(digits), epochs=3, optimizer=opt,
            scheduler=sched, **QUIET)  # fmt: skip
    assert h.lr[-1] < h.lr[0]


# ----------------------------------------------------------------------------- clipping, AMP


def _grad_norms_seen_by(opt: torch.optim.Optimizer, model: nn.Module) -> list[float]:
    """Record the total gradient norm each time the optimizer is about to step."""
    norms: list[float] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    opt.register_step_pre_hook(hook)
    return norms


@pytest.mark.parametrize("grad_clip", [None, 0.05])
def test_grad_clip_bounds_the_gradient_norm(digits, grad_clip):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    norms = _grad_norms_seen_by(opt, model)
    fit(model, train_pair(digits, 256), epochs=1, optimizer=opt, grad_clip=grad_clip,
        batch_size=32, **QUIET)  # fmt: skip
    assert len(norms) == 8
    if grad_clip is None:
        assert max(norms) > 0.05, "without clipping the norms exceed 0.05 (else test is void)"
    else:
        assert max(norms) <= grad_clip * (1 + 1e-4), f"clipped norms exceed {grad_clip}: {norms}"


def test_amp_and_channels_last_on_cpu_warn_and_match_fp32(digits):
    def run(**extra) -> tuple[History, nn.Module]:
        model = small_cnn()
        h = fit(model, train_pair(digits, 200), val_pair(digits), epochs=1, **QUIET, **extra)
        return h, model

    with pytest.warns(UserWarning, match="amp=True needs a CUDA device"):
        h_amp, m_amp = run(amp=True)
    with pytest.warns(UserWarning, match="channels_last=True needs a CUDA device"):
        run(channels_last=True)
    h_fp32, m_fp32 = run()
    assert history_without_times(h_amp) == history_without_times(h_fp32)
    for p, q in zip(m_amp.parameters(), m_fp32.parameters(), strict=True):
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_trains_only_once(digits, tmp_path, capsys):
    path = tmp_path / "ckpt" / "digits.pt"
    model = small_cnn(seed=0)
    h1 = fit(model, train_pair(digits, 200), val_pair(digits), epochs=2, checkpoint=path, **QUIET)
    sidecar = path.with_name("digits.pt.sha256")
    assert path.is_file() and sidecar.is_file()
    assert sidecar.read_text().split()[1] == "digits.pt"

    fresh = small_cnn(seed=1)  # different weights, so loading must change them
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1)
    steps = []
    opt.register_step_pre_hook(lambda *args: steps.append(1))
    h2 = fit(fresh, train_pair(digits, 200), val_pair(digits), epochs=2, optimizer=opt,
             checkpoint=path, device="cpu")  # fmt: skip
    assert steps == [], "a present checkpoint must be loaded, not trained over"
    assert h2 == h1
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)
    assert "Loaded" in capsys.readouterr().out


def test_save_and_load_checkpoint_helpers(digits, tmp_path):
    model = small_cnn(seed=0)
    history = History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], lr=[0.1, 0.1], seconds=[1, 1])
    path = save_checkpoint(tmp_path / "m.pt", model, history)
    other = small_cnn(seed=2)
    assert load_checkpoint(path, other) == history
    assert torch.equal(other[0].weight, model[0].weight)
    # The file holds only tensors and plain containers: weights_only loading works.
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"model", "history"}


def test_corrupt_checkpoint_raises_naming_the_file(digits, tmp_path):
    path = save_checkpoint(tmp_path / "bad.pt", small_cnn(), History(train_loss=[1.0]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    model = small_cnn(seed=3)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(CheckpointCorruptError, match=r"bad\.pt.*corrupt"):
        fit(model, train_pair(digits, 64), epochs=1, checkpoint=path, **QUIET)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
    path.with_name("bad.pt.sha256").unlink()
    with pytest.raises(CheckpointCorruptError, match=r"bad\.pt has no SHA-256"):
        load_checkpoint(path, model)


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_and_predict(digits):
    model = small_cnn()
    model.train()
    X, y = val_pair(digits)
    result = evaluate(model, (X, y), batch_size=100)
    assert model.training, "evaluate should restore the model's mode"
    assert result["logits"].shape == (len(y), 10)
    assert torch.equal(result["targets"], y)
    assert torch.equal(result["predictions"], result["logits"].argmax(1))
    assert result["accuracy"] == pytest.approx(accuracy(result["predictions"], y))
    expected_loss = nn.functional.cross_entropy(result["logits"], y).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    torch.testing.assert_close(predict(model, X, batch_size=64), result["logits"])
    loader = DataLoader(TensorDataset(X, y), batch_size=50)
    torch.testing.assert_close(predict(model, loader), result["logits"])


# ----------------------------------------------------------------------------- history, plots


def test_history_best_to_dict_and_plot():
    h = History(
        train_loss=[1.0, 0.6, 0.5],
        train_acc=[0.5, 0.7, 0.8],
        val_loss=[0.9, 0.4, 0.6],
        val_acc=[0.6, 0.85, 0.8],
        lr=[0.1] * 3,
        seconds=[1.0] * 3,
    )
    assert h.best()["epoch"] == 2 and h.best()["val_acc"] == 0.85
    assert h.best("val_loss")["epoch"] == 2
    assert h.best("train_loss")["epoch"] == 3
    assert History.from_dict(h.to_dict()) == h
    ax_loss, ax_acc = h.plot()
    assert ax_loss.get_xlabel() == "epoch" and ax_loss.get_ylabel() == "cross-entropy"
    assert ax_acc.get_ylabel() == "accuracy"
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == ["train", "validation"]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_live_plot_outside_jupyter_draws_one_final_figure(digits):
    import matplotlib.pyplot as plt

    plt.close("all")
    fit(small_cnn(), train_pair(digits, 64), epochs=2, live_plot=True, **QUIET)
    assert len(plt.get_fignums()) == 1
    plt.close("all")


# ----------------------------------------------------------------------------- bad input


model = small_cnn
# (what is wrong, call(X, y) with X: (64, 1, 8, 8) and y: (64,) real digits, error, words)
BAD_CALLS = [
    ("wrong input shape", lambda X, y: fit(model(), (X.repeat(1, 3, 1, 1), y), epochs=1, **QUIET),
     ValueError, r"shape \(64, 3, 8, 8\).*first layer is 0: Conv2d\(1, 16"),
    ("label too large", lambda X, y: fit(model(num_classes=5), (X, y), epochs=1, **QUIET),
     ValueError, r"train_data holds labels outside 0\.\.4.*the model has 5 outputs"),
    ("negative label", lambda X, y: fit(model(), (X, y - 1), epochs=1, **QUIET),
     ValueError, r"\(min -1,"),
    ("label too large, DataLoader",
     lambda X, y: fit(model(num_classes=5), DataLoader(TensorDataset(X, y), batch_size=8),
                 epochs=1, **QUIET),
     ValueError, r"train_data holds labels outside 0\.\.4.*the model has 5 outputs"),
    ("label too large in val_data",
     lambda X, y: fit(model(num_classes=5), (X, y.clamp(max=4)), (X, y), epochs=1, **QUIET),
     ValueError, r"val_data holds labels outside 0\.\.4 \(min 0, max 9\)"),
    ("empty tuple", lambda X, y: fit(model(), (X[:0], y[:0]), epochs=1, **QUIET),
     ValueError, "train_data is empty"),
    ("empty dataset", lambda X, y: fit(model(), TensorDataset(X[:0], y[:0]), epochs=1, **QUIET),
     ValueError, "train_data is empty"),
    ("X and y lengths differ", lambda X, y: fit(model(), (X, y[:10]), epochs=1, **QUIET),
     ValueError, "same number of samples"),
    ("epochs 0", lambda X, y: fit(model(), (X, y), epochs=0, **QUIET), ValueError, "epochs"),
    ("unknown scheduler_step",
     lambda X, y: fit(model(), (X, y), epochs=1, scheduler_step="step", **QUIET),
     ValueError, "scheduler_step must be one of"),
    ("model not a Module", lambda X, y: fit(lambda x: x, (X, y), epochs=1, **QUIET),
     TypeError, "model must be a torch.nn.Module"),
    ("train_data a list of arrays", lambda X, y: fit(model(), "digits", epochs=1, **QUIET),
     TypeError, "train_data must be"),
    ("grad_clip negative", lambda X, y: fit(model(), (X, y), epochs=1, grad_clip=-1, **QUIET),
     ValueError, "grad_clip"),
    ("evaluate non-module", lambda X, y: evaluate("model", (X, y)), TypeError, "model"),
    ("evaluate wrong shape", lambda X, y: evaluate(model(), (X[:, 0], y)),
     ValueError, r"data with shape \(64, 8, 8\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "call", "error", "words"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_input_fails_with_a_clear_error(digits, what, call, error, words):
    X, y = train_pair(digits, 64)
    with pytest.raises(error, match=words):
        call(X, y)


@pytest.mark.parametrize("kind", ["tuple", "loader"])
def test_bad_labels_change_no_weight(digits, kind):
    model = small_cnn(num_classes=5)
    before = [p.clone() for p in model.parameters()]
    data = train_pair(digits, 64)
    if kind == "loader":  # the first batch holds only good labels; later ones do not
        X, y = data
        order = torch.argsort(y, stable=True)
        data = DataLoader(Subset(TensorDataset(X, y), order.tolist()), batch_size=8)
    with pytest.raises(ValueError, match=r"train_data holds labels outside 0\.\.4"):
        fit(model, data, epochs=1, **QUIET)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))


def test_live_plot_in_a_jupyter_kernel_leaves_one_updated_image(tmp_path):
    """Under nbclient (the book build and nbval run notebooks this way) the live plot is one
    display that each epoch updates in place; the stored output is the final picture."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    import cnnbook

    source = f"""
import sys
sys.path.insert(0, {str(Path(cnnbook.__file__).parents[1])!r})
import torch
torch.set_num_threads(1)
from cnnbook.train import fit
torch.manual_seed(0)
X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
h = fit(torch.nn.Linear(4, 3), (X, y), (X, y), epochs=3, live_plot=True, progress=False,
        device="cpu")
assert len(h) == 3
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, f"expected one (updated) image output, got {outputs}"
    assert not [o for o in outputs if o.output_type == "error"]
