"""timm models by name (``timm:NAME``, the optional extra ``amnesiac[timm]``): built for the
dataset's channels and classes, trained, unlearned under the method contract, and saved and
loaded as checkpoints, on digits and Fashion-MNIST, on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import amnesiac
from amnesiac.errors import UnknownNameError
from amnesiac.models import create_model
from amnesiac.testing import check_method

pytest.importorskip("timm")  # in the dev extra, so CI has it

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SMALL = "timm:resnet10t"  # a small timm ResNet (4.9M parameters)


def test_an_unknown_timm_name_names_the_closest():
    with pytest.raises(UnknownNameError, match="Closest: resnet18") as err:
        create_model("timm:resnt18", in_channels=1, num_classes=10)
    assert len(str(err.value)) < 300  # the closest names, not the whole zoo


@pytest.mark.parametrize(("channels", "side"), [(1, 8), (1, 28), (3, 32)])
def test_a_timm_model_takes_the_datasets_channels_and_classes(channels, side):
    model = create_model(SMALL, in_channels=channels, num_classes=7)
    assert model(torch.rand(2, channels, side, side)).shape == (2, 7)


def _trained(dataset: str, n: int, epochs: int) -> tuple[torch.nn.Module, amnesiac.Splits]:
    data = amnesiac.load_dataset(dataset)
    model = create_model(SMALL, in_channels=data.train_x.shape[1], num_classes=data.num_classes)
    recipe = amnesiac.TrainRecipe(epochs=epochs, lr=0.05, batch_size=64, seed=0)
    return amnesiac.train_classifier(model, data.train_x[:n], data.train_y[:n], recipe), data


@pytest.mark.parametrize(
    ("dataset", "n", "epochs"), [("digits", 1797, 4), ("fashion-mnist", 1024, 2)]
)
def test_a_timm_model_keeps_the_method_contract(dataset, n, epochs):
    if dataset == "fashion-mnist" and not FASHION_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist not installed")
    model, data = _trained(dataset, n, epochs)
    pred = model(data.train_x[:n]).argmax(1)
    right = torch.nonzero(pred == data.train_y[:n]).flatten()[:8]
    forget = (data.train_x[right], data.train_y[right])
    result = check_method("l2ul", model, forget)
    assert result.forgotten


def test_a_timm_checkpoint_goes_through_pretrain_unlearn_and_retrain(tmp_path):
    from amnesiac.cli import main

    model = tmp_path / "timm.safetensors"
    assert main(["pretrain", "--dataset", "digits", "--arch", SMALL, "--epochs", "2",
                 "--out", str(model)]) == 0  # fmt: skip
    ckpt = amnesiac.load_checkpoint(model)
    assert ckpt.meta["arch"] == SMALL
    for method, extra in (("l2ul", []), ("retrain", ["--epochs", "1"])):
        out = tmp_path / f"{method}.safetensors"
        assert main(["unlearn", "--dataset", "digits", "--model", str(model), "--forget",
                     "random:4:0", "--method", method, *extra, "--out", str(out)]) == 0  # fmt: skip
        assert amnesiac.load_checkpoint(out).meta["arch"] == SMALL
