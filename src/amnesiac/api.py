"""The public verbs: unlearn, evaluate, list_methods and make_config."""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

# importing the package registers every method
import amnesiac.methods  # noqa: F401
from amnesiac.data.anchors import shared_images
from amnesiac.data.tensors import as_images, as_tensors
from amnesiac.errors import DivergenceError, InvalidForgetSetError, InvalidSettingsError
from amnesiac.methods.base import (
    MethodInfo,
    UnlearnConfig,
    UnlearnData,
    UnlearnResult,
    accepting,
    get_method,
    registered,
)
from amnesiac.metrics.accuracy import accuracy_from_logits, inference_model, predict_logits
from amnesiac.metrics.mia import mia_from_logits
from amnesiac.ops.layout import INFERENCE_BATCH_SIZE
from amnesiac.ops.losses import runner_up

logger = logging.getLogger(__name__)

Data = Dataset[Any] | tuple[Tensor, Tensor] | tuple[Any, Any]


def list_methods() -> list[MethodInfo]:
    """Every registered method: name, settings class, data it reads, one-line summary, paper."""
    return [registered()[k] for k in sorted(registered())]


def make_config(method: str, preset: str | None = None, **settings: Any) -> UnlearnConfig:
    """Resolve a method's settings: its defaults, then the preset, then ``settings``.

    Unknown setting names and invalid values are reported together in one
    :class:`~amnesiac.errors.InvalidSettingsError`. A setting given that the others leave
    unused (``UnlearnConfig.unused_settings``) at another value than the preset's or default's
    is refused too, unless ``settings`` holds every setting: that is a resolved config passed
    again (``config.to_dict()``), checked when it was first resolved.
    """
    info = get_method(method)
    values: dict[str, Any] = {}
    if preset is not None:
        presets = info.cls.presets
        if preset not in presets:
            valid = ", ".join(sorted(presets)) or "none"
            raise InvalidSettingsError(
                f"method {method!r} has no preset {preset!r}; its presets: {valid}"
            )
        values.update(presets[preset])
    values.update(settings)
    fields = {f.name for f in dataclasses.fields(info.config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, fields, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InvalidSettingsError(
            f"method {method!r} has no setting {', '.join(hints)}; its settings: "
            f"{', '.join(sorted(fields))}"
        )
    config = info.config_cls(**values)
    # what the settings would be without the caller's: the defaults under the preset (a caller
    # replaying a resolved preset passes it again, so its values are not the caller's own)
    baseline = info.config_cls(**(info.cls.presets[preset] if preset is not None else {}))
    # a complete set of settings is a config resolved (and checked) before, replayed: the bench,
    # the CLI after its own check, continual's rounds, a ledger entry rerun
    replayed = fields <= set(settings)
    idle = [
        f"{name!r} ({reason})"
        for name, reason in config.unused_settings().items()
        if name in settings and getattr(config, name) != getattr(baseline, name) and not replayed
    ]
    if idle:
        raise InvalidSettingsError(
            f"method {method!r} would not use the settings given: {'; '.join(idle)}; leave them out"
        )
    return config


def _model_classes(model: nn.Module, x: Tensor) -> int:
    logits = predict_logits(model, x[:1])
    if logits.ndim != 2:
        raise InvalidSettingsError(
            f"the model must return logits of shape (N, num_classes); it returned shape "
            f"{tuple(logits.shape)}"
        )
    return int(logits.shape[1])


def _param_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    if p is None:
        raise InvalidSettingsError("the model has no parameters to unlearn with")
    return p.device, p.dtype


def _surrogate_images(
    surrogate: Tensor | np.ndarray | None, info: MethodInfo, fx: Tensor
) -> tuple[Tensor | None, list[str]]:
    """The surrogate images on the forget images' device and dtype, and what is wrong with
    them: unlabeled images of the forget images' shape, none of them in the forget set."""
    problems: list[str] = []
    method = info.name
    sx = None
    if surrogate is None and "surrogate" in info.reads:
        problems.append(
            f"method {method!r} reads unlabeled in-domain images; pass surrogate= (e.g. images "
            "the deployed model serves, never the training set)"
        )
    if surrogate is not None:
        if not info.uses("surrogate"):
            problems.append(
                f"method {method!r} does not use surrogate images; methods that do: "
                f"{', '.join(accepting('surrogate'))}"
            )
        elif not isinstance(surrogate, (Tensor, np.ndarray)):
            problems.append(
                f"surrogate must be unlabeled images, a tensor (N, C, H, W); got a "
                f"{type(surrogate).__name__}. Labelled data is training data: pass the images "
                "alone, or give labelled retained data to a method that reads retain="
            )
        else:
            sx = as_images(surrogate, name="surrogate").to(device=fx.device, dtype=fx.dtype)
            if sx.shape[1:] != fx.shape[1:]:
                problems.append(
                    f"surrogate images have shape {tuple(sx.shape[1:])} but forget images "
                    f"{tuple(fx.shape[1:])}"
                )
            elif shared := shared_images(sx, fx):
                problems.append(
                    f"{len(shared)} surrogate images are also in the forget set (surrogate "
                    f"positions {shared[:5]}); anchors hold the model's outputs, so they must "
                    "not include what it is to forget: leave them out"
                )
    return sx, problems


def _warn_forget_only(config: UnlearnConfig, base: UnlearnConfig, given: dict[str, Any]) -> None:
    """Warn about settings given for a run with anchors that act only without them (unless
    their anchored counterpart was given too, as a grid's settings for both kinds of run)."""
    idle = [
        n
        for n in config.FORGET_ONLY
        if n in given and f"anchored_{n}" not in given and getattr(config, n) != getattr(base, n)
    ]
    if idle:
        logger.warning(
            "%s act only without anchors; with anchors set %s instead",
            ", ".join(idle),
            ", ".join(f"anchored_{n}" for n in idle),
        )


def unlearn(
    model: nn.Module,
    forget: Data,
    *,
    method: str = "l2ul",
    retain: Data | None = None,
    surrogate: Tensor | np.ndarray | None = None,
    targets: Tensor | None = None,
    preset: str | None = None,
    progress: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    **settings: Any,
) -> UnlearnResult:
    """Make a copy of ``model`` forget the instances in ``forget``.

    Args:
        model: A classifier taking images in [0, 1] (normalization inside the model) and
            returning logits. It is never modified: weights, train/eval mode, gradients and hooks
            stay as they were.
        forget: The forget set D_f: a Dataset of ``(image, label)`` or a pair ``(x, y)``.
        method: A registered method name (see :func:`list_methods`).
        retain: The retained data D_r, for methods that read it (``neg_grad_retain``,
            ``finetune``, ``retrain``, ...; :attr:`MethodInfo.reads`) or use it when given
            (``amun``; :attr:`MethodInfo.accepts`); ignored by the other methods.
        surrogate: Unlabeled images from the data's own domain that were not trained on (e.g.
            inputs the deployed model serves, or a forget-ready model's anchors:
            :func:`amnesiac.model_anchors`), as a tensor ``(N, C, H, W)`` in [0, 1]; labelled
            data and images that are also in ``forget`` are refused. Methods that accept it
            (``l2ul``; see :attr:`MethodInfo.accepts`) hold the original model's outputs on these
            images instead of on proxies made from the forget set; ``scar`` needs them
            (:attr:`MethodInfo.reads`). Never the training set: with it, use a method that
            reads ``retain``.
        targets: Per-instance relabel targets ``(K,)``; implies ``objective="relabel"``.
            With ``objective="relabel"`` and no targets, the original model's runner-up class
            is the target.
        preset: A named settings bundle of the method, e.g. ``"paper"`` for ``l2ul``.
        progress: Show a progress bar.
        callback: Called after every step with that step's history record.
        **settings: Fields of the method's settings dataclass (``lr``, ``max_steps``,
            ``seed``, ...); they override the preset.

    Returns:
        An :class:`UnlearnResult` with the new model, the history, steps, the stop reason and
        the seconds by phase.

    Shape:
        ``forget`` images ``(K, C, H, W)`` in [0, 1], labels ``(K,)``.

    Example:
        >>> result = amnesiac.unlearn(model, forget=(x_f, y_f), method="l2ul", seed=0)
        >>> metrics = amnesiac.evaluate(result.model, forget=(x_f, y_f), test=(x_t, y_t))
    """
    if not isinstance(model, nn.Module):
        raise InvalidSettingsError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    info = get_method(method)
    if targets is not None and "objective" not in settings:
        settings["objective"] = "relabel"
    config = make_config(method, preset, **settings)
    fx, fy = as_tensors(forget, name="forget")
    device, dtype = _param_device_dtype(model)
    fx, fy = fx.to(device=device, dtype=dtype), fy.to(device)
    num_classes = _model_classes(model, fx)
    problems = []
    if int(fy.max()) >= num_classes or int(fy.min()) < 0:
        problems.append(
            f"forget labels must be in [0, {num_classes - 1}] for a {num_classes}-class model, "
            f"got values in [{int(fy.min())}, {int(fy.max())}]"
        )
    rx = ry = None
    if info.needs_retain or (info.uses("retain") and retain is not None):
        if retain is None:
            problems.append(f"method {method!r} reads the retained data; pass retain=")
        else:
            rx, ry = as_tensors(retain, name="retain")
            rx, ry = rx.to(device=device, dtype=dtype), ry.to(device)
            if rx.shape[1:] != fx.shape[1:]:
                problems.append(
                    f"retain images have shape {tuple(rx.shape[1:])} but forget images "
                    f"{tuple(fx.shape[1:])}"
                )
    elif retain is not None:
        logger.info("method %s reads only the forget set; retain data ignored", method)
    sx, found = _surrogate_images(surrogate, info, fx)
    problems += found
    if sx is not None:
        _warn_forget_only(config, make_config(method, preset), settings)
    tgt: Tensor | None = None
    if config.objective == "misclassify" and targets is not None:
        problems.append("targets were given with objective='misclassify'; use 'relabel'")
    if config.objective == "relabel" and not problems:
        if targets is None:
            tgt = runner_up(predict_logits(model, fx), fy)
        else:
            tgt = torch.as_tensor(targets).to(device=device).long().reshape(-1)
            if len(tgt) != len(fy):
                problems.append(f"got {len(tgt)} targets for {len(fy)} forget instances")
            elif int(tgt.min()) < 0 or int(tgt.max()) >= num_classes:
                problems.append(f"targets must be in [0, {num_classes - 1}]")
            elif bool((tgt == fy).any()):
                same = torch.nonzero(tgt == fy).flatten()[:5].tolist()
                problems.append(
                    f"targets equal the true label at forget positions {same}; a relabel target "
                    "must differ from the true label"
                )
    if problems:
        raise InvalidForgetSetError("; ".join(problems))
    data = UnlearnData(fx, fy, tgt, rx, ry, num_classes, surrogate_x=sx)
    logger.info("unlearning %d instances with %s", len(fy), method)
    return info.cls(config).unlearn(model, data, progress=progress, callback=callback)


def evaluate(
    model: nn.Module,
    *,
    forget: Data | None = None,
    retain: Data | None = None,
    test: Data | None = None,
    targets: Tensor | None = None,
    membership: bool = False,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> dict[str, float]:
    """Accuracy of ``model`` on each given set, in percent, as a flat dict.

    Keys: ``forget_acc``, ``retain_acc``, ``test_acc`` for the sets given, and
    ``forget_target_acc`` (share of forget instances predicted as their target) when
    ``targets`` is given. With ``membership=True`` (needs all three sets) the population
    membership-inference attacks of :mod:`amnesiac.metrics.mia` are added from the same outputs:
    ``mia_loss_member_rate``, ``mia_loss_auc``, ``mia_loss_attack_auc`` and their
    ``mia_entropy_`` counterparts. The model's mode is restored; no gradients are computed.

    Raises:
        DivergenceError: The model outputs NaN or infinite logits on some input (its
            accuracy would mean nothing).
    """
    if membership and (forget is None or retain is None or test is None):
        raise InvalidSettingsError(
            "membership=True needs forget, retain and test: the attack learns members (retain) "
            "from non-members (test) and is asked about the forget set"
        )
    out: dict[str, float] = {}
    outputs: dict[str, tuple[Tensor, Tensor]] = {}
    sets = {
        key: as_tensors(data, name=key)
        for key, data in (("forget", forget), ("retain", retain), ("test", test))
        if data is not None
    }
    if sets:  # one inference copy for all the sets, not one per set
        model = inference_model(model, next(iter(sets.values()))[0])
    for key, (x, y) in sets.items():
        logits = predict_logits(model, x, batch_size=batch_size)
        bad = int((~torch.isfinite(logits).all(1)).sum())
        if bad:
            raise DivergenceError(
                f"the model outputs NaN or infinite logits on {bad} of {len(x)} {key} inputs, "
                "so its accuracy is undefined; it is broken (e.g. diverged training), not "
                "evaluable"
            )
        outputs[key] = (logits, y)
        out[f"{key}_acc"] = accuracy_from_logits(logits, y)
        if key == "forget" and targets is not None:
            out["forget_target_acc"] = accuracy_from_logits(logits, torch.as_tensor(targets))
    if membership:
        out.update(mia_from_logits(outputs["forget"], outputs["retain"], outputs["test"]))
    return out
