"""cnnbook.pretrained: the one loader of pretrained weights (SHA-256 check, offline errors,
the real mirrored file) and the ImageNet statistics read from torchvision's preset."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from cnnbook import pretrained as P

MOBILENET = "mobilenet_v2-b0353104.pth"
HAVE_MOBILENET = P.weights_file("mobilenet_v2", "IMAGENET1K_V1").is_file()
needs_mirror = pytest.mark.skipif(
    not HAVE_MOBILENET, reason="needs TORCH_HOME with the MobileNetV2 weights"
)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty torch cache: $TORCH_HOME/hub/checkpoints under tmp_path, offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_weights_file_is_torchvisions_name_in_torch_home(cache):
    assert P.weights_file() == cache / MOBILENET
    member = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert P.weights_file("resnet18", member) == cache / member.url.rsplit("/", 1)[-1]


def test_wrong_sha_is_refused_naming_the_file(cache):
    # The name's prefix (b0353104) is not enough: the book knows the file's full SHA-256.
    (cache / MOBILENET).write_bytes(b"not the real weights")
    with pytest.raises(P.WeightsCorruptError) as info:
        P.load_pretrained("mobilenet_v2", "IMAGENET1K_V1")
    assert str(cache / MOBILENET) in str(info.value)
    assert P.KNOWN_SHA256[MOBILENET] in str(info.value)


def test_unlisted_files_are_checked_against_the_prefix_in_their_name(tmp_path):
    content = b"some weights"
    digest = hashlib.sha256(content).hexdigest()
    good = tmp_path / f"net-{digest[:8]}.pth"
    good.write_bytes(content)
    P.verify_weights(good)  # no error
    bad = tmp_path / f"net-{'0' * 8 if digest[0] != '0' else '1' * 8}.pth"
    bad.write_bytes(content)
    with pytest.raises(P.WeightsCorruptError, match=bad.name):
        P.verify_weights(bad)


def test_missing_file_offline_says_which_file_goes_where(cache):
    with pytest.raises(P.WeightsNotFoundError) as info:
        P.load_pretrained("mobilenet_v2", "IMAGENET1K_V1")
    message = str(info.value)
    assert MOBILENET in message and str(cache) in message and "offline" in message
    assert torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url in message
    with pytest.raises(FileNotFoundError, match="resnet18-"):
        P.load_pretrained("resnet18", "IMAGENET1K_V1")
    with pytest.raises(P.WeightsNotFoundError, match="download=False"):
        P.load_pretrained("resnet18", "IMAGENET1K_V1", download=False)


def test_random_initialisation_needs_no_file(cache):
    model = P.load_pretrained("resnet18", None, num_classes=3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


@needs_mirror
def test_loads_the_real_mirrored_weights(monkeypatch):
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    P.verify_weights(P.weights_file())
    model = P.load_pretrained("mobilenet_v2", P.IMAGENET_WEIGHTS)
    reference = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    assert model.training, "returned in training mode, like torchvision's builders"
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    # Builder arguments pass through (chapter 15 builds its backbone with frozen BatchNorm).
    frozen = P.load_pretrained("mobilenet_v2", "IMAGENET1K_V1", norm_layer=FrozenBatchNorm2d)
    assert isinstance(frozen.features[0][1], FrozenBatchNorm2d)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(frozen.eval()(x), copy.deepcopy(model).eval()(x), atol=1e-4)


def test_imagenet_statistics_come_from_torchvisions_preset():
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert P.IMAGENET_MEAN == tuple(preset.mean) == (0.485, 0.456, 0.406)
    assert P.IMAGENET_STD == tuple(preset.std) == (0.229, 0.224, 0.225)
    x = torch.rand(2, 3, 5, 5)
    mean = torch.tensor(P.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(P.IMAGENET_STD).view(3, 1, 1)
    assert torch.equal(P.imagenet_normalize(x), (x - mean) / std)
    assert len(P.imagenet_categories()) == 1000 and P.imagenet_categories()[285] == "Egyptian cat"


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: P.load_pretrained(18), TypeError, "arch"),
        (lambda: P.load_pretrained("no_such_net"), ValueError, "arch"),
        (lambda: P.load_pretrained("mobilenet_v2", "IMAGENET9K"), ValueError, "weights"),
        (lambda: P.load_pretrained("mobilenet_v2", 1), TypeError, "weights"),
        (lambda: P.load_pretrained("mobilenet_v2", download="yes"), TypeError, "download"),
        (lambda: P.weights_file("mobilenet_v2", None), ValueError, "weights"),
        (lambda: P.imagenet_normalize(torch.rand(1, 4, 2, 2)), ValueError, "x"),
        (lambda: P.imagenet_normalize(torch.zeros(3, 2, 2, dtype=torch.uint8)), TypeError, "x"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
