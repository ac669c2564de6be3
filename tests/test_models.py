"""Architectures, checkpoint I/O (never executes code) and the training recipe."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import amnesiac
from amnesiac.models import create_model, load_checkpoint, model_meta, save_checkpoint
from amnesiac.training import TrainRecipe, augment, reinitialize


def meta_for(model_arch: str = "cnn") -> dict:
    return model_meta(
        model_arch,
        in_channels=1,
        num_classes=10,
        mean=[0.5],
        std=[0.25],
        dataset="digits",
        input_shape=[1, 8, 8],
    )


def test_resnet20_size_and_shapes() -> None:
    m = create_model("resnet20", in_channels=1, num_classes=10)
    n = sum(p.numel() for p in m.parameters())
    assert 260_000 < n < 280_000  # He et al. 2016: 0.27M
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert m.features(torch.rand(2, 1, 28, 28)).shape == (2, 64)
    assert create_model("resnet18", in_channels=3, num_classes=100)(
        torch.rand(1, 3, 32, 32)
    ).shape == (1, 100)


def test_resnet18_maxpool_is_resnet18_with_the_stem_pool_kept() -> None:
    """L2UL's CIFAR-10 network: the same weights as resnet18, the first stage at half the
    resolution (16x16 maps from 32x32 images, 32x32 without the max-pool)."""
    plain = create_model("resnet18", in_channels=3, num_classes=10)
    pooled = create_model("resnet18_maxpool", in_channels=3, num_classes=10)
    assert plain.state_dict().keys() == pooled.state_dict().keys()
    pooled.load_state_dict(plain.state_dict())
    sizes = {}
    for name, m in (("plain", plain), ("pooled", pooled)):
        m.net.layers[0].register_forward_hook(lambda _m, _i, o, n=name: sizes.update({n: o.shape}))
        assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sizes["plain"][-2:] == (32, 32) and sizes["pooled"][-2:] == (16, 16)


def test_torchvision_models_by_name() -> None:
    m = create_model("tv:resnet18", in_channels=1, num_classes=7)
    assert m(torch.rand(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(amnesiac.UnknownNameError, match="resnet18"):
        create_model("tv:resnet81", in_channels=3, num_classes=7)
    with pytest.raises(amnesiac.UnknownNameError, match="Did you mean 'resnet20'"):
        create_model("resnet02", in_channels=3, num_classes=7)


def test_normalization_is_inside_the_model() -> None:
    m = create_model("cnn", in_channels=1, num_classes=10, mean=[0.5], std=[0.25])
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(m.normalize(x), (x - 0.5) / 0.25)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = create_model("cnn", in_channels=1, num_classes=10, mean=[0.5], std=[0.25])
    path = tmp_path / "m.safetensors"
    save_checkpoint(m, path, meta_for())
    ck = load_checkpoint(path)
    assert ck.meta["dataset"] == "digits" and ck.meta["format"] == "amnesiac/1"
    x = torch.rand(4, 1, 8, 8)
    m.eval()
    assert torch.equal(ck.model(x), m(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickles_are_refused_and_never_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(amnesiac.CheckpointError, match="can execute code"):
        load_checkpoint(evil)
    zipped = tmp_path / "state.pt"
    torch.save(create_model("cnn", in_channels=1, num_classes=10).state_dict(), zipped)
    with pytest.raises(amnesiac.CheckpointError, match="pickled PyTorch file"):
        load_checkpoint(zipped)
    assert not (tmp_path / "PWNED").exists()


def test_bad_checkpoints_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(amnesiac.CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(amnesiac.CheckpointError, match=r"not a (readable )?safetensors"):
        load_checkpoint(junk)
    m = create_model("cnn", in_channels=1, num_classes=10)
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(m, wrong, {**meta_for(), "arch": "resnet20"})
    with pytest.raises(amnesiac.CheckpointError, match="do not fit architecture 'resnet20'"):
        load_checkpoint(wrong)
    with torch.no_grad():
        next(m.parameters())[0] = float("nan")
    nan = tmp_path / "nan.safetensors"
    save_checkpoint(m, nan, meta_for())
    with pytest.raises(amnesiac.CheckpointError, match="NaN"):
        load_checkpoint(nan)
    with pytest.raises(amnesiac.CheckpointError, match="lacks"):
        save_checkpoint(m, tmp_path / "x.safetensors", {"arch": "cnn"})
    assert not (tmp_path / "x.safetensors").exists()


def test_save_into_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    m = create_model("cnn", in_channels=1, num_classes=10)
    with pytest.raises(OSError, match="does not exist"):
        save_checkpoint(m, tmp_path / "nope" / "m.safetensors", meta_for())


def test_shipped_models_meet_their_bar(digits) -> None:
    ck = amnesiac.load_pretrained("digits")
    assert ck.meta["recipe"]["epochs"] > 0 and "trained_by" in ck.meta
    assert amnesiac.evaluate(ck.model, test=digits.test())["test_acc"] > 90.0
    fm = amnesiac.load_pretrained("fashion-mnist")
    assert fm.meta["test_acc"] >= 92.0
    assert fm.meta["arch"] == "resnet20" and fm.meta["input_shape"] == [1, 28, 28]
    with pytest.raises(amnesiac.CheckpointError, match="no model is shipped"):
        amnesiac.load_pretrained("cifar10")


def test_augment_keeps_shape_and_content() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    out = augment(x, padding=0, flip=False, generator=g)
    assert torch.equal(out, x)
    out = augment(x, padding=2, flip=True, generator=g)
    assert out.shape == x.shape
    # a crop with zero offset-from-centre and no flip exists for some sample with high odds;
    # every output row is a shifted slice of the padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        found = any(
            torch.equal(out[i], padded[i, :, a : a + 8, b : b + 8])
            or torch.equal(out[i], padded[i, :, a : a + 8, b : b + 8].flip(-1))
            for a in range(5)
            for b in range(5)
        )
        assert found


def test_training_learns_and_reinitialize_is_seeded(digits) -> None:
    torch.manual_seed(1)
    m = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
    recipe = TrainRecipe(epochs=3, batch_size=64, lr=0.05, crop_padding=0, flip=False)
    amnesiac.train_classifier(m, digits.train_x, digits.train_y, recipe)
    assert amnesiac.evaluate(m, test=digits.test())["test_acc"] > 80.0
    a = reinitialize(create_model("resnet20", in_channels=1, num_classes=10), 3).state_dict()
    b = reinitialize(create_model("resnet20", in_channels=1, num_classes=10), 3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(amnesiac.InvalidSettingsError, match="lr must be > 0"):
        TrainRecipe(lr=0)


def test_plain_cnn_has_no_skip_connections_and_optional_batchnorm() -> None:
    from amnesiac.models import list_archs

    assert {"plaincnn", "plaincnn_nobn"} <= set(list_archs())
    with_bn = create_model("plaincnn", in_channels=1, num_classes=10)
    without = create_model("plaincnn_nobn", in_channels=3, num_classes=5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())
    assert with_bn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert without(torch.rand(2, 3, 8, 8)).shape == (2, 5)
    assert with_bn.features(torch.rand(2, 1, 8, 8)).shape == (2, 64)
