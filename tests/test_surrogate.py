"""Surrogate images (unlabeled in-domain anchors), the gradient-norm bound, and proxy shifts given
as fractions of the image side."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import amnesiac
from amnesiac.cli import main
from amnesiac.data import as_images, load_surrogate, surrogate_test_rows
from amnesiac.errors import InvalidForgetSetError, InvalidSettingsError
from amnesiac.methods.base import UnlearnData
from amnesiac.methods.l2ul import L2UL, shift_pixels


def test_as_images_takes_tensors_arrays_pairs_and_datasets() -> None:
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(as_images(x), x)
    assert torch.equal(as_images(x.numpy()), x)
    assert as_images(torch.rand(5, 8, 8)).shape == (5, 1, 8, 8)
    assert torch.equal(as_images((x, torch.zeros(5, dtype=torch.long))), x)
    assert torch.equal(as_images(TensorDataset(x, torch.arange(5))), x)
    with pytest.raises(InvalidSettingsError, match=r"\[0, 1\]"):
        as_images(x * 255)
    with pytest.raises(InvalidSettingsError, match="empty"):
        as_images(torch.rand(0, 1, 8, 8))


def test_l2ul_anchors_on_the_surrogate_images_instead_of_proxies(tiny_model, forget8, digits):
    x, y = forget8
    sur = digits.test_x[:50]
    method = L2UL(amnesiac.make_config("l2ul", anchored_augment_to=0))
    data = UnlearnData(x, y, None, None, None, 10, surrogate_x=sur)
    method.prepare(tiny_model, tiny_model, data)
    assert method.proxy_x is sur  # the anchors are the caller's images, not forget proxies
    assert method.proxy_logits is not None
    assert torch.allclose(method.proxy_logits, tiny_model.eval()(sur), atol=1e-5)
    # by default a set this small is grown by copies of itself, never of the forget images
    grown = L2UL(amnesiac.make_config("l2ul"))
    grown.prepare(tiny_model, tiny_model, data)
    assert grown.proxy_x is not None and len(grown.proxy_x) == 2000
    assert torch.equal(grown.proxy_x[:50], sur)
    assert not any(torch.equal(p, f) for p in grown.proxy_x for f in x)


def test_unlearn_with_a_surrogate_forgets_and_keeps_inputs(tiny_model, forget8, digits) -> None:
    sur = digits.test_x[:100].clone()
    before = sur.clone()
    result = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, seed=0, max_steps=300)
    assert result.forgotten
    assert torch.equal(sur, before)
    again = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, seed=0, max_steps=300)
    for a, b in zip(result.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_surrogate_errors_name_the_problem(tiny_model, forget8, digits) -> None:
    with pytest.raises(InvalidForgetSetError, match=r"does not use surrogate.*l2ul"):
        amnesiac.unlearn(tiny_model, forget=forget8, method="neg_grad", surrogate=digits.test_x)
    with pytest.raises(InvalidForgetSetError, match="surrogate images have shape"):
        amnesiac.unlearn(tiny_model, forget=forget8, surrogate=torch.rand(4, 1, 9, 9))
    with pytest.raises(InvalidSettingsError, match="surrogate"):
        amnesiac.unlearn(tiny_model, forget=forget8, surrogate=torch.rand(4, 1, 8, 8) + 1)


def test_out_of_domain_anchors_do_not_diverge_with_the_bound(tiny_model, forget8) -> None:
    # uniform noise as anchors, a learning rate far above the default: the gradient bound keeps
    # every step small, so the run ends with finite weights (and its history says it clipped)
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    result = amnesiac.unlearn(
        tiny_model, forget=forget8, surrogate=noise, seed=0, anchored_lr=0.5, clip_grad_norm=1.0,
        max_steps=50, stop="budget", shrink_steps=0,
    )  # fmt: skip
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert max(h["grad_norm"] for h in result.history) > 1.0


def test_clip_grad_norm_bounds_each_step(tiny_model, forget8) -> None:
    # oracle: plain SGD (no momentum, no weight decay) moves the weights by lr * ||g|| at most
    lr, bound = 0.1, 0.5
    result = amnesiac.unlearn(
        tiny_model, forget=forget8, method="neg_grad", lr=lr, momentum=0.0, weight_decay=0.0,
        clip_grad_norm=bound, max_steps=1, stop="budget",
    )  # fmt: skip
    moved = sum(
        float(((a - b).detach() ** 2).sum())
        for a, b in zip(result.model.parameters(), tiny_model.parameters(), strict=True)
    )
    assert result.history[0]["grad_norm"] > bound  # the bound was active
    assert moved**0.5 <= lr * bound * (1 + 1e-4)
    with pytest.raises(InvalidSettingsError, match="clip_grad_norm"):
        amnesiac.make_config("l2ul", clip_grad_norm=-1.0)


def test_proxy_shift_is_a_fraction_of_the_image_side() -> None:
    assert (shift_pixels(0.1, 28), shift_pixels(0.15, 28)) == (3, 4)  # the former 3-4 pixels
    assert (shift_pixels(0.1, 8), shift_pixels(0.15, 8)) == (1, 1)
    assert (shift_pixels(0.1, 224), shift_pixels(0.0, 224)) == (22, 0)
    with pytest.raises(InvalidSettingsError, match="fractions of the image side"):
        amnesiac.make_config("l2ul", proxy_max_shift=4)


def test_load_surrogate_from_a_folder_and_a_test_split(tmp_path, digits) -> None:
    from PIL import Image

    folder = tmp_path / "served"
    (folder / "day1").mkdir(parents=True)
    pixels = (digits.test_x[:3, 0] * 255).round().to(torch.uint8).numpy()
    for i, p in enumerate(pixels):
        Image.fromarray(np.asarray(p), mode="L").save(folder / "day1" / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    x = load_surrogate(str(folder))
    assert x.shape == (3, 1, 8, 8)
    assert torch.allclose(x, digits.test_x[:3], atol=1 / 255)
    assert torch.equal(load_surrogate("digits:test:10:20"), digits.test_x[10:20])
    assert surrogate_test_rows("digits:test:10:20", "digits", 450) == (10, 20)
    assert surrogate_test_rows("fashion-mnist:test", "digits", 450) is None
    assert surrogate_test_rows(str(folder), "digits", 450) is None
    with pytest.raises(InvalidSettingsError, match="training split"):
        load_surrogate("digits:train")
    with pytest.raises(InvalidSettingsError, match="outside the 450 test images"):
        load_surrogate("digits:test:400:500")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidSettingsError, match="no image files"):
        load_surrogate(str(tmp_path / "empty"))


def test_cli_surrogate_leaves_its_rows_out_of_d_test(tmp_path, capsys) -> None:
    report = tmp_path / "r.json"
    code = main([
        "unlearn", "--dataset", "digits", "--forget", "random:4:0", "--no-progress",
        "--surrogate", "digits:test:0:150", "--report", str(report), "--max-steps", "40",
        "--stop", "budget",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "anchors: 150 images from digits:test:0:150" in out
    assert "the 300 test images outside" in out
    data = json.loads(report.read_text())
    assert data["surrogate"] == "digits:test:0:150" and data["test_size"] == 300
    for bad, message in (
        (["--method", "neg_grad"], "does not use --surrogate"),
        ([], "takes every test image"),
    ):
        code = main([
            "unlearn", "--dataset", "digits", "--forget", "random:4:0", "--no-progress",
            "--surrogate", "digits:test", "--out", str(tmp_path / "m.safetensors"), *bad,
        ])  # fmt: skip
        assert code == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "m.safetensors").exists()
