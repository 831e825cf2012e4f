"""cnnbook.transfer: weights loading (offline errors, corrupt files), heads and blocks,
freezing (no gradient, no change), frozen BatchNorm statistics, LR groups, preprocessing,
frozen-feature training, a reader's ImageFolder, and bad arguments."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from cnnbook import pretrained as P
from cnnbook import transfer as T
from cnnbook.data import as_tensors
from cnnbook.train import fit

MIRROR = Path(os.environ.get("TORCH_HOME", "/nonexistent")) / "hub" / "checkpoints"
HAVE_MOBILENET = (MIRROR / "mobilenet_v2-b0353104.pth").is_file()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class TinyNet(nn.Module):
    """A MobileNet-shaped toy: ``features`` (3 blocks with BatchNorm), pooling, ``classifier``.

    x: (N, 3, 8, 8) -> (N, num_classes).
    """

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
            nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(8, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))  # (N, 8)
        return self.classifier(x)


class TinyResNetLike(nn.Module):
    """No ``features``: blocks are the top-level children with parameters (like ResNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.layer1 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def one_step(model: nn.Module, lr: float = 0.1) -> None:
    """One SGD step (momentum, weight decay: a frozen tensor must still not move)."""
    model.train()
    # All parameters, frozen ones too: SGD must skip them because they get no gradient.
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=0.01)
    x, y = batch()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def bn_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


# ----------------------------------------------------------------------------- weights


@pytest.mark.skipif(not HAVE_MOBILENET, reason="needs TORCH_HOME with the MobileNetV2 weights")
def test_pretrained_mobilenet_loads_and_gets_a_new_head(monkeypatch):
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    model = T.load_backbone("mobilenet_v2", "IMAGENET1K_V1", num_classes=10)
    reference = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    assert T.head_name(model) == "classifier.1"
    assert model.classifier[1].out_features == 10
    assert torch.equal(model.features[0][0].weight, reference.features[0][0].weight)
    assert len(T.backbone_blocks(model)) == 19
    assert P.weights_file() == MIRROR / "mobilenet_v2-b0353104.pth"


def test_missing_weights_offline_say_which_file_goes_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    with pytest.raises(P.WeightsNotFoundError) as info:
        T.load_backbone("mobilenet_v2", "IMAGENET1K_V1")
    message = str(info.value)
    assert "mobilenet_v2-b0353104.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "offline" in message
    with pytest.raises(P.WeightsNotFoundError, match="download=False"):
        T.load_backbone("resnet18", "IMAGENET1K_V1", download=False)


def test_a_corrupt_weight_file_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "mobilenet_v2-b0353104.pth").write_bytes(b"not the real weights")
    with pytest.raises(P.WeightsCorruptError, match="b0353104"):
        T.load_backbone("mobilenet_v2", "IMAGENET1K_V1")


def test_random_init_needs_no_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    model = T.load_backbone("mobilenet_v2", None, num_classes=3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


# ----------------------------------------------------------------------------- head, blocks


def test_replace_head_is_seeded_and_keeps_in_features():
    a, b = T.replace_head(TinyNet(), 7, seed=3), T.replace_head(TinyNet(), 7, seed=3)
    assert a.classifier[1].in_features == 8 and a.classifier[1].out_features == 7
    assert torch.equal(a.classifier[1].weight, b.classifier[1].weight)
    custom = nn.Linear(8, 2)
    assert T.replace_head(TinyNet(), custom).classifier[1] is custom


def test_blocks_of_a_features_model_and_of_a_resnet_like_model():
    assert [name for name, _ in T.backbone_blocks(TinyNet())] == [
        "features.0",
        "features.1",
        "features.2",
    ]
    resnet_like = TinyResNetLike()
    assert T.head_name(resnet_like) == "fc"
    assert [name for name, _ in T.backbone_blocks(resnet_like)] == ["conv1", "bn1", "layer1"]


def test_blocks_of_torchvision_resnet18():
    model = torchvision.models.resnet18(weights=None)
    names = [name for name, _ in T.backbone_blocks(model)]
    assert names == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]


# ----------------------------------------------------------------------------- freezing


@pytest.mark.parametrize("top_blocks", [0, 1, 2])
def test_frozen_parameters_get_no_gradient_and_do_not_move(top_blocks):
    model = TinyNet()
    n_trainable = T.freeze_backbone(model, top_blocks=top_blocks)
    before = copy.deepcopy(model.state_dict())
    one_step(model)
    n_frozen_blocks = 3 - top_blocks
    frozen = [f"features.{i}." for i in range(n_frozen_blocks)]
    trainable = [f"features.{i}." for i in range(n_frozen_blocks, 3)] + ["classifier."]
    for name, p in model.named_parameters():
        if name.startswith(tuple(frozen)):
            assert not p.requires_grad and p.grad is None, f"{name} should get no gradient"
            assert torch.equal(p, before[name]), f"{name} is frozen but changed"
        else:
            assert name.startswith(tuple(trainable))
            assert p.grad is not None and not torch.equal(p, before[name]), f"{name} should train"
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_trainable == expected == T.count_trainable(model)


def test_freezing_the_backbone_also_freezes_its_batchnorm_statistics():
    model = TinyNet()
    T.freeze_backbone(model, top_blocks=1)
    before = bn_stats(model)
    one_step(model)
    after = bn_stats(model)
    for key in before:
        same = torch.equal(before[key], after[key])
        assert same == (not key.startswith("features.2.")), f"{key}: frozen iff below the top"


def test_without_batchnorm_option_requires_grad_alone_lets_statistics_drift():
    model = TinyNet()
    T.freeze_backbone(model, batchnorm=False)
    before = bn_stats(model)
    one_step(model)
    assert not torch.equal(before["features.0.1.running_mean"], model.features[0][1].running_mean)


def test_unfreeze_restores_everything():
    model = TinyNet()
    total = sum(p.numel() for p in model.parameters())
    T.freeze_backbone(model)
    assert T.unfreeze(model) == total
    assert not any(T.is_batchnorm_frozen(m) for m in model.modules())
    before = bn_stats(model)
    one_step(model)
    assert not torch.equal(before["features.0.1.running_mean"], model.features[0][1].running_mean)


# ----------------------------------------------------------------------------- BatchNorm


def test_frozen_batchnorm_keeps_running_statistics_through_fit():
    model = TinyNet()
    assert T.freeze_batchnorm(model) == 3
    before = bn_stats(model)
    x, y = batch(32)
    fit(model, (x, y), epochs=2, batch_size=8, progress=False)  # fit calls model.train()
    assert model.training, "the model itself is still in training mode"
    for key, value in bn_stats(model).items():
        assert torch.equal(value, before[key]), f"{key} changed although BatchNorm is frozen"
    # affine parameters still train unless asked otherwise
    assert model.features[0][1].weight.requires_grad


def test_frozen_batchnorm_normalises_with_running_statistics():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(4.0)
    T.freeze_batchnorm(bn)
    bn.train()
    x = torch.randn(4, 3, 5, 5)
    expected = (x - 0.5) / torch.sqrt(torch.tensor(4.0) + bn.eps)
    assert torch.allclose(bn(x), expected, atol=1e-6)


def test_freeze_batchnorm_affine_and_its_undo():
    model = TinyNet()
    T.freeze_batchnorm(model, affine=True)
    before = copy.deepcopy(model.state_dict())
    one_step(model)
    bn_prefixes = tuple(f"features.{i}.1." for i in range(3))  # every BatchNorm layer
    for name, value in model.state_dict().items():
        changed = not torch.equal(value, before[name])
        assert changed != name.startswith(bn_prefixes), f"{name}: only BatchNorm is frozen"
    assert T.unfreeze_batchnorm(model) == 3
    assert all(p.requires_grad for p in model.parameters())
    assert model.features[0][1].training, "BatchNorm follows the model's mode again"
    assert T.unfreeze_batchnorm(model) == 0, "nothing left to undo"


def test_frozen_batchnorm_survives_deepcopy():
    model = TinyNet()
    T.freeze_batchnorm(model)
    clone = copy.deepcopy(model)
    bns = [m for m in clone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(T.is_batchnorm_frozen(m) for m in bns), "a copy stays frozen"
    assert T.unfreeze_batchnorm(clone) == 3
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(T.is_batchnorm_frozen(m) for m in bns), "undoing the copy leaves the original"
    # ... and really: the original's hook still holds it in eval mode, the copy's is gone.
    before, clone_before = bn_stats(model), bn_stats(clone)
    model.train()(batch()[0])
    clone.train()(batch()[0])
    assert all(torch.equal(v, bn_stats(model)[k]) for k, v in before.items())
    assert not torch.equal(
        clone_before["features.0.1.running_mean"], bn_stats(clone)["features.0.1.running_mean"]
    )


# ----------------------------------------------------------------------------- LR groups


def test_param_groups_have_layer_wise_learning_rates():
    model = TinyNet()
    groups = T.param_groups(model, head_lr=1e-2, backbone_lr=1e-3, layer_decay=0.5)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == pytest.approx(
        {"classifier.1": 1e-2, "features.2": 1e-3, "features.1": 5e-4, "features.0": 2.5e-4}
    )
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters())), "each parameter once"
    opt = torch.optim.AdamW(groups)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]


def test_param_groups_skip_frozen_parameters_and_put_strays_at_backbone_lr():
    model = TinyNet()
    T.freeze_backbone(model, top_blocks=1)
    names = [g["name"] for g in T.param_groups(model, head_lr=1.0, backbone_lr=0.1)]
    assert names == ["classifier.1", "features.2"]
    model = TinyNet()
    model.extra = nn.Parameter(torch.zeros(2))  # in no block and not in the head
    groups = T.param_groups(model, head_lr=1.0, backbone_lr=0.1, layer_decay=0.9)
    assert groups[-1]["name"] == "other" and groups[-1]["lr"] == 0.1
    assert groups[-1]["params"][0] is model.extra


# ----------------------------------------------------------------------------- preprocessing


def test_imagenet_preprocess_resizes_and_normalises():
    x = torch.rand(2, 3, 32, 32)
    out = P.imagenet_preprocess(x, 64)
    assert out.shape == (2, 3, 64, 64)
    flat = torch.full((1, 3, 4, 4), 0.5)
    expected = (0.5 - torch.tensor(P.IMAGENET_MEAN)) / torch.tensor(P.IMAGENET_STD)
    got = P.imagenet_preprocess(flat, (8, 6))
    assert got.shape == (1, 3, 8, 6)
    assert torch.allclose(got[0, :, 3, 2], expected, atol=1e-6)
    grey = P.imagenet_preprocess(torch.rand(1, 1, 5, 5), 5)
    assert grey.shape == (1, 3, 5, 5)


def test_imagenet_transform_matches_preprocess_on_a_pil_image():
    from PIL import Image

    pixels = torch.randint(0, 256, (12, 12, 3), dtype=torch.uint8)
    image = Image.fromarray(pixels.numpy())
    a = P.imagenet_transform(12)(image)
    b = P.imagenet_preprocess(pixels.permute(2, 0, 1)[None].float() / 255, 12)[0]
    assert torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- frozen features


def test_feature_extractor_drops_the_head_and_leaves_the_model_alone():
    model = TinyNet()
    extractor = T.feature_extractor(model)
    x, _ = batch(5)
    features = T.extract_features(extractor, x, batch_size=2)
    assert features.shape == (5, 8)
    model.eval()
    assert torch.allclose(model.classifier(features), model(x), atol=1e-6)
    assert isinstance(model.classifier[1], nn.Linear), "the original keeps its head"
    assert not any(p.requires_grad for p in extractor.parameters())


def test_fit_head_trains_only_the_head():
    model = TinyNet()
    before = copy.deepcopy(model.state_dict())
    x, y = batch(40)
    history = T.fit_head(model, (x, y), (x, y), epochs=15, lr=0.05, batch_size=20, progress=False)
    assert len(history) == 15 and history.train_loss[-1] < history.train_loss[0]
    for name, value in model.state_dict().items():
        moved = not torch.equal(value, before[name])
        assert moved == name.startswith("classifier.1"), f"{name}: only the head may change"


# ----------------------------------------------------------------------------- ImageFolder


def test_a_written_image_folder_reads_back(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 10, 10, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    root = T.save_image_folder(images, labels, tmp_path / "mine", ["ant", "bee", "cat"])
    dataset = T.image_folder(root, 16)
    assert dataset.classes == ["ant", "bee", "cat"] and len(dataset) == 6
    X, y = as_tensors(dataset)
    assert X.shape == (6, 3, 16, 16)
    assert sorted(y.tolist()) == sorted(labels.tolist())
    same_size = T.image_folder(root, 10)
    X10, y10 = as_tensors(same_size)
    order = torch.argsort(labels, stable=True)  # files are listed class by class
    expected = P.imagenet_preprocess(images[order], 10)
    assert torch.allclose(X10, expected, atol=0.02), "PNG rounds pixels to 1/255 only"
    assert torch.equal(y10, labels[order])


def test_image_folder_rejects_missing_or_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="root"):
        T.image_folder(tmp_path / "nope", 32)
    with pytest.raises(ValueError, match="no sub-folders"):
        T.image_folder(tmp_path, 32)
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="cats"):
        T.image_folder(tmp_path, 32)


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: T.load_backbone(3), TypeError, "arch"),
        (lambda: T.load_backbone("not_a_net"), ValueError, "arch"),
        (lambda: T.load_backbone("mobilenet_v2", "IMAGENET9K"), ValueError, "weights"),
        (lambda: T.load_backbone("mobilenet_v2", 1), TypeError, "weights"),
        (lambda: T.load_backbone("mobilenet_v2", None, num_classes=0), ValueError, "num_classes"),
        (lambda: T.load_backbone("mobilenet_v2", None, download="y"), TypeError, "download"),
        (lambda: T.replace_head("model", 3), TypeError, "model"),
        (lambda: T.replace_head(TinyNet(), 0), ValueError, "head"),
        (lambda: T.replace_head(TinyNet(), 2, seed=-1), ValueError, "seed"),
        (lambda: T.head_name(nn.Conv2d(1, 1, 1)), ValueError, "model"),
        (lambda: T.freeze_backbone(TinyNet(), top_blocks=4), ValueError, "top_blocks"),
        (lambda: T.freeze_backbone(TinyNet(), top_blocks=1.0), TypeError, "top_blocks"),
        (lambda: T.freeze_backbone(TinyNet(), batchnorm=1), TypeError, "batchnorm"),
        (lambda: T.freeze_batchnorm(TinyNet(), affine="no"), TypeError, "affine"),
        (lambda: T.freeze_batchnorm([]), TypeError, "module"),
        (lambda: T.param_groups(TinyNet(), head_lr=0, backbone_lr=1), ValueError, "head_lr"),
        (lambda: T.param_groups(TinyNet(), head_lr=1, backbone_lr="1"), TypeError, "backbone_lr"),
        (
            lambda: T.param_groups(TinyNet(), head_lr=1, backbone_lr=1, layer_decay=1.5),
            ValueError,
            "layer_decay",
        ),
        (lambda: P.imagenet_preprocess(torch.rand(3, 8, 8), 8), ValueError, "x"),
        (lambda: P.imagenet_preprocess(torch.rand(1, 3, 8, 8) * 255, 8), ValueError, "x"),
        (
            lambda: P.imagenet_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 8),
            TypeError,
            "x",
        ),
        (lambda: P.imagenet_preprocess(torch.rand(1, 3, 8, 8), 0), ValueError, "size"),
        (lambda: P.imagenet_transform((8, 8, 8)), ValueError, "size"),
        (lambda: T.extract_features(TinyNet(), [1, 2]), TypeError, "X"),
        (
            lambda: T.extract_features(TinyNet(), batch(4)[0], batch_size=0),
            ValueError,
            "batch_size",
        ),
        (lambda: T.fit_head(TinyNet(), batch(4)[0], epochs=1), TypeError, "train_data"),
        (lambda: T.fit_head(TinyNet(), batch(4), epochs=1, lr=-1), ValueError, "lr"),
        (lambda: T.fit_head(TinyNet(), batch(4), epochs=0), ValueError, "epochs"),
        (lambda: T.image_folder(3, 8), TypeError, "root"),
        (
            lambda: T.save_image_folder(torch.rand(2, 8, 8), [0, 1], "/tmp/x", ["a"]),
            ValueError,
            "images",
        ),
        (
            lambda: T.save_image_folder(
                torch.rand(2, 3, 8, 8), torch.tensor([0, 5]), "/tmp/x", ["a"]
            ),
            ValueError,
            "labels",
        ),
    ],
)
def test_bad_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
