"""The library on a CUDA device: every method, the shared ops, the metrics, the CIFAR-10
ResNet-18 training setup and (with 2 GPUs) data-parallel training.

Skipped where no GPU is present (as on CI); run on a machine with one. Each check compares the GPU
run with the same run on the CPU or with the contract every method keeps.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import amnesiac
from amnesiac.data import Splits
from amnesiac.methods.base import registered
from amnesiac.models import model_meta
from amnesiac.ops import mas_importance, pgd_l2, shrink_update
from amnesiac.training import PRETRAIN_SETUPS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def settings(method: str) -> dict[str, object]:
    s: dict[str, object] = {"seed": 0, "max_steps": 30}
    if method == "retrain":
        s = {"seed": 0, "epochs": 1, "batch_size": 128}
    if method in ("l2ul_adv",):
        s.update(n_adv=2, pgd_steps=3)
    return s


@pytest.mark.parametrize("method", sorted(registered()))
def test_every_method_runs_on_cuda(method: str, tiny_model, forget8, digits: Splits) -> None:
    model = copy.deepcopy(tiny_model).to(CUDA)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    retain = (digits.train_x[100:600], digits.train_y[100:600])  # CPU tensors: moved for us
    result = amnesiac.unlearn(
        model, forget=forget8, method=method, retain=retain, **settings(method)
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    if result.stopped_by == "forgotten":
        assert amnesiac.evaluate(result.model, forget=forget8)["forget_acc"] == 0.0


def test_l2ul_defaults_forget_on_cuda(tiny_model, forget8) -> None:
    result = amnesiac.unlearn(copy.deepcopy(tiny_model).to(CUDA), forget=forget8, method="l2ul")
    assert result.forgotten and 0 < result.update_fraction <= 1


def test_pgd_matches_cpu(tiny_model, forget8) -> None:
    x, y = forget8
    target = (y + 1) % 10
    runs = []
    for device in ("cpu", "cuda"):
        model = copy.deepcopy(tiny_model).to(device).double().eval()
        g = torch.Generator().manual_seed(0)
        adv = pgd_l2(
            model, x.double().to(device), target.to(device), eps=1.0, step_size=0.2, steps=10,
            generator=g,
        )  # fmt: skip
        runs.append(adv.cpu())
    assert torch.allclose(runs[0], runs[1], atol=1e-8)


def test_mas_matches_cpu(tiny_model, forget8) -> None:
    x, _ = forget8
    cpu = mas_importance(copy.deepcopy(tiny_model).double(), x.double())
    gpu = mas_importance(copy.deepcopy(tiny_model).double().to(CUDA), x.double())
    assert all(torch.allclose(cpu[k], gpu[k].cpu(), atol=1e-10) for k in cpu)


def test_shrink_and_evaluate_on_cuda(tiny_model, forget8, digits: Splits) -> None:
    original = copy.deepcopy(tiny_model).to(CUDA)
    result = amnesiac.unlearn(original, forget=forget8, method="neg_grad", lr=0.05, max_steps=200)
    x, y = (t.to(CUDA) for t in forget8)

    def forgotten(m: nn.Module) -> bool:
        return bool((m(x).argmax(1) != y).all())

    shrunk, a = shrink_update(original, result.model, forgotten)
    assert forgotten(shrunk) and 0 < a <= 1
    gpu = amnesiac.evaluate(shrunk, forget=forget8, test=(digits.test_x, digits.test_y))
    cpu = amnesiac.evaluate(shrunk.cpu(), forget=forget8, test=(digits.test_x, digits.test_y))
    assert gpu.keys() == cpu.keys()
    assert all(abs(gpu[k] - cpu[k]) < 0.5 for k in gpu)


def test_checkpoint_of_a_cuda_model(tmp_path: Path, tiny_model, digits: Splits) -> None:
    model = copy.deepcopy(tiny_model).to(CUDA)
    meta = model_meta("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std,
                      input_shape=[1, 8, 8], dataset="digits")  # fmt: skip
    amnesiac.save_checkpoint(model, tmp_path / "m.safetensors", meta)
    loaded = amnesiac.load_checkpoint(tmp_path / "m.safetensors").model
    ref = model.cpu().state_dict()
    assert all(torch.equal(v.cpu(), ref[k]) for k, v in loaded.state_dict().items())


def test_cifar10_resnet18_setup_trains_on_cuda() -> None:
    """The paper's CIFAR-10 setup (resnet18_maxpool, bf16 autocast, channels-last) on
    CIFAR-shaped images: a few steps, finite, back in the default layout."""
    setup = PRETRAIN_SETUPS["cifar10-resnet18"]
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(512, 3, 32, 32, generator=g), torch.randint(0, 10, (512,), generator=g)
    torch.manual_seed(0)
    model = amnesiac.create_model(setup.arch, in_channels=3, num_classes=10).to(CUDA)
    recipe = dataclasses.replace(setup.recipe, epochs=1)
    amnesiac.train_classifier(model, x.to(CUDA), y.to(CUDA), recipe)
    assert all(torch.isfinite(p).all() and p.is_contiguous() for p in model.parameters())
    assert model(x[:4].to(CUDA)).shape == (4, 10)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpus_train_data_parallel(tmp_path: Path, digits: Splits) -> None:
    """torchrun with 2 processes, one GPU each (nccl): the same checkpoint on every rank and the
    accuracy of one process (tests/test_distributed.py runs the same on the CPU with gloo)."""
    from distributed_worker import RECIPE, digits_model
    from test_distributed import ACCURACY_TOLERANCE, WORKER, ranks

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "WORKER_DEVICE": "cuda"}
    done = subprocess.run([*cmd, str(WORKER), "train", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seen = ranks(tmp_path)
    assert seen[0]["memory"] == seen[1]["memory"] == seen[0]["file"] == seen[1]["file"]
    model = digits_model().to(CUDA)
    amnesiac.train_classifier(model, digits.train_x.to(CUDA), digits.train_y.to(CUDA), RECIPE)
    single = amnesiac.evaluate(model, test=(digits.test_x, digits.test_y))["test_acc"]
    assert abs(seen[0]["test_acc"] - single) <= ACCURACY_TOLERANCE
