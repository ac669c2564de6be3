"""The ``amnesiac`` command line: a thin skin over the public API, and the only place that prints.

Method settings become flags generated from each method's settings dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import amnesiac
from amnesiac._io import OutputPathError, atomic_write_bytes, atomic_write_text, check_writable
from amnesiac._versions import software_versions
from amnesiac.continual import plot_continual, resume_rounds, round_path, run_continual
from amnesiac.data import (
    Splits,
    list_datasets,
    load_dataset,
    load_surrogate,
    parse_forget,
    retain_eval_indices,
    retain_indices,
    surrogate_test_rows,
)
from amnesiac.data.surrogate import SURROGATE_SPEC_HELP
from amnesiac.errors import AmnesiacError, CheckpointError, InvalidSettingsError
from amnesiac.ledger import Ledger, Request, forget_sha256
from amnesiac.methods.base import accepting
from amnesiac.models import (
    Checkpoint,
    list_archs,
    load_checkpoint,
    load_pretrained,
    model_meta,
    pretrained_path,
)
from amnesiac.models.checkpoint import checkpoint_bytes
from amnesiac.shadows import default_cache_dir, train_shadows
from amnesiac.training import TrainRecipe

PROG = "amnesiac"


class CLIError(AmnesiacError):
    """A problem with the command line itself."""


# ------------------------------------------------------------------ flags from dataclasses
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute descriptions from the Google-style ``Attributes:`` sections along the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = klass.__doc__ or ""
        if "Attributes:" not in text:
            continue
        section = text.split("Attributes:", 1)[1]
        current = None
        for line in section.splitlines():
            m = re.match(r"^\s{4,8}(\w+): (.*)$", line)
            if m and (len(line) - len(line.lstrip())) <= 8:
                current = m.group(1)
                docs[current] = m.group(2).strip()
            elif current and line.strip():
                docs[current] += " " + line.strip()
            elif not line.strip() and current:
                current = None
    return docs


def _flag_kwargs(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"choices": choices, "type": type(choices[0])}
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_kwargs(args[0])
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if tp in (int, float, str):
        return {"type": tp}
    return {"type": str}


def add_dataclass_flags(
    parser: argparse.ArgumentParser | Any, cls: type, *, skip: Sequence[str] = ()
) -> list[str]:
    """Add one ``--flag`` per field of dataclass ``cls`` (default ``None``: not given).

    Returns the field names added.
    """
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kwargs = _flag_kwargs(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = docs.get(f.name, "")
        kwargs["help"] = f"{help_text} (default: {default})".replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, **kwargs)
        names.append(f.name)
    return names


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


# ------------------------------------------------------------------ shared helpers
def _load_model(spec: str | None, dataset: str) -> tuple[Checkpoint, str]:
    if spec is None or spec == "shipped":
        ckpt = load_pretrained(dataset)
        return ckpt, f"shipped:{dataset}"
    return load_checkpoint(spec), spec


def _check_fit(ckpt: Checkpoint, data: Splits, source: str) -> None:
    meta = ckpt.meta
    problems = []
    if int(meta["num_classes"]) != data.num_classes:
        problems.append(
            f"model {source} has {meta['num_classes']} classes but dataset {data.name} has "
            f"{data.num_classes}"
        )
    if int(meta["in_channels"]) != data.input_shape[0]:
        problems.append(
            f"model {source} takes {meta['in_channels']} channels but dataset {data.name} has "
            f"{data.input_shape[0]}"
        )
    shape = meta.get("input_shape")
    if shape and tuple(shape) != tuple(data.input_shape):
        problems.append(
            f"model {source} was trained on images of shape {tuple(shape)}, dataset "
            f"{data.name} has {tuple(data.input_shape)}"
        )
    if problems:
        raise CheckpointError("; ".join(problems) + "; pass a model trained on this dataset")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _retain_eval(data: Splits, forget: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    return retain_eval_indices(len(data.train_y), forget, size, seed)


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", required=True, help=f"one of {', '.join(list_datasets())}, or folder:PATH"
    )
    p.add_argument("--data-dir", default=None, help="folder to look for the dataset in first")
    p.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if not found (needs a network)",
    )


# ------------------------------------------------------------------ commands
def cmd_methods(args: argparse.Namespace) -> int:
    rows = [
        [
            m.name,
            "+".join(m.reads) + "".join(f" (+{a})" for a in m.accepts),
            ", ".join(sorted(m.cls.presets)) or "-",
            m.summary,
        ]
        for m in amnesiac.list_methods()
    ]
    print(_table(rows, ["method", "reads", "presets", "description"]))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    out = check_writable(args.out)
    recipe = TrainRecipe(**_given(args, args._recipe_fields))
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    c, h, w = data.input_shape
    torch.manual_seed(recipe.seed)
    model = amnesiac.create_model(
        args.arch, in_channels=c, num_classes=data.num_classes, mean=data.mean, std=data.std
    )
    print(
        f"pretraining {args.arch} on {data.name}: {len(data.train_y)} train, "
        f"{len(data.test_y)} test images, {recipe.epochs} epochs"
    )
    accs: list[float] = []
    t0 = time.perf_counter()

    def on_epoch(epoch: int, m: torch.nn.Module) -> dict[str, float]:
        acc = amnesiac.evaluate(m, test=(data.test_x, data.test_y))["test_acc"]
        accs.append(acc)
        print(
            f"epoch {epoch + 1}/{recipe.epochs}: test accuracy {acc:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return {"test_acc": acc}

    amnesiac.train_classifier(
        model, data.train_x, data.train_y, recipe, progress=True, on_epoch=on_epoch
    )
    meta = model_meta(
        args.arch,
        in_channels=c,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        input_shape=[c, h, w],
        dataset=data.name,
        classes=list(data.classes),
        recipe=recipe.to_dict(),
        test_acc=accs[-1] if accs else None,
        trained_by=f"amnesiac pretrain --dataset {data.name} --arch {args.arch} "
        f"--epochs {recipe.epochs} --seed {recipe.seed}",
        versions=software_versions(),
        seconds=round(time.perf_counter() - t0, 1),
    )
    amnesiac.save_checkpoint(model, out, meta)
    print(f"saved {out} (test accuracy {_fmt(accs[-1] if accs else None)}%)")
    return 0


def _method_parser(method: str) -> tuple[argparse.ArgumentParser, list[str]]:
    info = amnesiac.get_method(method)
    p = argparse.ArgumentParser(add_help=False, prog=f"{PROG} unlearn", exit_on_error=False)
    group = p.add_argument_group(f"settings of method {method!r}")
    names = add_dataclass_flags(group, info.config_cls)
    return p, names


def _method_config(args: argparse.Namespace, extra: list[str]) -> amnesiac.UnlearnConfig:
    """The settings of ``args.method`` from ``args.preset`` and the method flags in ``extra``."""
    parser, names = _method_parser(args.method)
    try:
        margs, unknown = parser.parse_known_args(extra)
    except argparse.ArgumentError as e:
        raise CLIError(
            f"{e}; see `amnesiac unlearn --method {args.method} --help` for the settings"
        ) from None
    if unknown:
        raise CLIError(
            f"unrecognized arguments for method {args.method!r}: {' '.join(unknown)}; "
            f"see `amnesiac unlearn --method {args.method} --help`"
        )
    return amnesiac.make_config(args.method, args.preset, **_given(margs, names))


def cmd_unlearn(args: argparse.Namespace, extra: list[str]) -> int:
    config = _method_config(args, extra)
    outs = [check_writable(p) for p in (args.out, args.report, args.forget_out) if p]
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    ckpt, source = _load_model(args.model, data.name)
    _check_fit(ckpt, data, source)
    forget = parse_forget(args.forget, data.train_y)
    request = None
    if args.ledger:
        request = _ledger_request(args, data.name, forget, config.to_dict())
        if request.done:
            print(
                f"request {request.request_id} is already in {args.ledger} with its model "
                f"{args.out}; nothing to do"
            )
            return 0
        if args.from_original:
            forget = torch.tensor(request.forget_indices, dtype=torch.int64)
    info = amnesiac.get_method(args.method)
    retain_all = retain_indices(len(data.train_y), forget)
    retain_ev = _retain_eval(data, forget, args.retain_eval_size, 0)
    f_set = (data.train_x[forget], data.train_y[forget])
    r_eval = (data.train_x[retain_ev], data.train_y[retain_ev])
    test = (data.test_x, data.test_y)
    surrogate = None
    if args.surrogate:
        if "surrogate" not in info.accepts:
            raise CLIError(
                f"method {args.method!r} does not use --surrogate; methods that do: "
                + ", ".join(accepting("surrogate"))
            )
        surrogate = load_surrogate(args.surrogate, data_dir=args.data_dir, download=args.download)
        rows_taken = surrogate_test_rows(args.surrogate, data.name, len(data.test_y))
        if rows_taken is not None:  # D_test must not hold the anchors
            keep = torch.ones(len(data.test_y), dtype=torch.bool)
            keep[rows_taken[0] : rows_taken[1]] = False
            if not keep.any():
                raise CLIError(
                    f"--surrogate {args.surrogate} takes every test image, leaving none for "
                    "D_test; give a range, e.g. "
                    f"{data.name}:test:0:{len(data.test_y) // 2}"
                )
            test = (data.test_x[keep], data.test_y[keep])
    print(
        f"{args.method}: forgetting {len(forget)} of {len(data.train_y)} {data.name} training "
        f"instances ({args.forget}) from {source}"
    )
    t0 = time.perf_counter()
    before = amnesiac.evaluate(ckpt.model, forget=f_set, retain=r_eval, test=test)
    t_before = time.perf_counter() - t0
    retain = (data.train_x[retain_all], data.train_y[retain_all]) if info.needs_retain else None
    result = amnesiac.unlearn(
        ckpt.model,
        forget=f_set,
        method=args.method,
        retain=retain,
        surrogate=surrogate,
        progress=not args.no_progress,
        **config.to_dict(),
    )
    t0 = time.perf_counter()
    after = amnesiac.evaluate(result.model, forget=f_set, retain=r_eval, test=test)
    t_after = time.perf_counter() - t0
    seconds = {**result.seconds, "evaluate": t_before + t_after}
    rows = [
        [
            name,
            _fmt(before[f"{key}_acc"]),
            _fmt(after[f"{key}_acc"]),
            f"{after[f'{key}_acc'] - before[f'{key}_acc']:+.2f}",
        ]
        for name, key in (
            ("D_f (forget)", "forget"),
            ("D_r (retain)", "retain"),
            ("D_test", "test"),
        )
    ]
    print(_table(rows, ["accuracy %", "before", "after", "change"]))
    r_note = "all" if len(retain_ev) == len(retain_all) else f"a seeded subset of {len(retain_ev)}"
    print(f"D_r evaluated on {r_note} retained instances")
    if surrogate is not None:
        print(
            f"surrogate: {len(surrogate)} unlabeled images ({args.surrogate}); D_test is the "
            f"{len(test[1])} test images outside them"
        )
    kept = f"; update shrunk to {result.update_fraction:.1%}" if result.update_fraction < 1 else ""
    print(
        f"steps: {result.steps} (stopped by {result.stopped_by}; forgotten: "
        f"{'yes' if result.forgotten else 'NO'}{kept})"
    )
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    meta = {
        **ckpt.meta,
        "unlearned": {
            "method": args.method,
            "from": source,
            "forget_sha256": forget_sha256(forget),
            "settings": result.config,
        },
    }
    report = {
        "method": args.method,
        "preset": args.preset,
        "settings": result.config,
        "dataset": data.name,
        "model": source,
        "forget_spec": args.forget,
        "forget_indices": forget.tolist(),
        "forget_sha256": forget_sha256(forget),
        "retain_eval_size": len(retain_ev),
        "surrogate": args.surrogate,
        "test_size": len(test[1]),
        "before": before,
        "after": after,
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "forgotten": result.forgotten,
        "update_fraction": result.update_fraction,
        "seconds": seconds,
        "versions": software_versions(),
        "history": result.history,
    }
    # write every output only after everything succeeded
    if args.out:
        atomic_write_bytes(outs[0], checkpoint_bytes(result.model, meta))
        print(f"saved {args.out}")
    if request is not None:  # after the model: a crash in between leaves no ledger entry
        entry = Ledger(args.ledger).record(
            request,
            {
                "metrics": {"before": before, "after": after},
                "forgotten": result.forgotten,
                "steps": result.steps,
            },
        )
        print(f"ledger {args.ledger}: request {entry['request_id']} recorded")
    if args.report:
        atomic_write_text(args.report, json.dumps(report, indent=2))
        print(f"report {args.report}")
    if args.forget_out:
        atomic_write_text(args.forget_out, "\n".join(map(str, forget.tolist())) + "\n")
    return 0


def _ledger_request(
    args: argparse.Namespace, dataset: str, forget: torch.Tensor, settings: dict[str, Any]
) -> Request:
    """The ledger's verdict on this request (see :meth:`amnesiac.ledger.Ledger.request`)."""
    if not args.out:
        raise CLIError("--ledger needs --out: the ledger records the model a request produces")
    check_writable(args.ledger)
    return Ledger(args.ledger).request(
        dataset=dataset,
        input_model=pretrained_path(dataset) if args.model in (None, "shipped") else args.model,
        forget_indices=forget.tolist(),
        method=args.method,
        settings=settings,
        output_model=args.out,
        preset=args.preset,
        request_id=args.request_id,
        store_indices=not args.hash_indices,
        from_original=args.from_original,
    )


def cmd_continual(args: argparse.Namespace, extra: list[str]) -> int:
    config = _method_config(args, extra)
    if amnesiac.get_method(args.method).needs_retain:
        raise CLIError(
            f"continual runs forget-only methods; {args.method!r} needs the retained data"
        )
    if args.rounds < 1 or args.per_round < 1:
        raise CLIError(
            f"--rounds and --per-round must be >= 1, got {args.rounds}, {args.per_round}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder")
    check_writable(out / "ledger.jsonl") if out.is_dir() else check_writable(out)
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    ckpt, source = _load_model(args.model, data.name)
    _check_fit(ckpt, data, source)
    out.mkdir(exist_ok=True)
    ledger = Ledger(out / "ledger.jsonl")
    in_path = pretrained_path(data.name) if args.model in (None, "shipped") else Path(args.model)
    from_original = not args.chained
    start = resume_rounds(ledger, in_path, out, from_original=from_original)
    if start:
        print(f"resuming after round {len(start)} of {args.rounds} ({ledger.path})")
    print(
        f"continual {args.method}: {args.rounds} rounds x {args.per_round} instances of "
        f"{data.name} from {source}"
    )

    def on_round(r: int, model: torch.nn.Module, row: dict[str, Any]) -> None:
        path = round_path(out, r)
        request = ledger.request(
            dataset=data.name,
            input_model=in_path if from_original or r == 1 else round_path(out, r - 1),
            forget_indices=row["forget_indices"],
            method=args.method,
            settings=config.to_dict(),
            output_model=path,
            preset=args.preset,
            request_id=f"round-{r}",
            from_original=from_original,
        )
        meta = {**ckpt.meta, "unlearned": {"method": args.method, "round": r, "from": source}}
        atomic_write_bytes(path, checkpoint_bytes(model, meta))
        # a re-solved round deleted every request so far, from the original model
        forget_acc = row["all_forget_acc"] if from_original else row["round_forget_acc"]
        ledger.record(
            request, {"metrics": {"after": {"forget_acc": forget_acc}}, "continual_row": row}
        )
        print(
            f"round {r}: D_f {row['round_forget_acc']:.1f}%, all forgotten so far "
            f"{row['all_forget_acc']:.1f}%, D_r {row['retain_acc']:.2f}%, "
            f"D_test {row['test_acc']:.2f}% ({row['steps']} steps, {row['seconds']:.1f} s)",
            flush=True,
        )

    rows = run_continual(
        ckpt.model,
        data,
        rounds=args.rounds,
        per_round=args.per_round,
        method=args.method,
        config=config,
        seed=args.seed,
        retain_eval_size=args.retain_eval_size,
        progress=not args.no_progress,
        on_round=on_round,
        start=start,
        from_original=from_original,
    )
    before = amnesiac.evaluate(ckpt.model, test=(data.test_x, data.test_y))["test_acc"]
    table = [
        [
            str(r["round"]),
            _fmt(r["round_forget_acc"]),
            _fmt(r["all_forget_acc"]),
            _fmt(r["retain_acc"]),
            _fmt(r["test_acc"]),
            str(r["steps"]),
        ]
        for r in rows
    ]
    print(
        _table(
            table, ["round", "D_f (round) %", "D_f (all so far) %", "D_r %", "D_test %", "steps"]
        )
    )
    print(f"D_test before the first round: {before:.2f}%")
    summary = {
        "from_original": from_original,
        "method": args.method,
        "settings": config.to_dict(),
        "dataset": data.name,
        "model": source,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "seed": args.seed,
        "test_acc_before": before,
        "rows": rows,
    }
    atomic_write_text(out / "continual.json", json.dumps(summary, indent=2))
    plot_continual(rows, out / "continual.png", f"{args.method}, {args.per_round} per round")
    print(f"wrote {out / 'continual.json'}, {out / 'continual.png'} and {ledger.path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    checked = Ledger(args.ledger).verify(
        load_data=lambda name: load_dataset(name, args.data_dir, download=False),
        check_accuracy=not args.no_accuracy,
    )
    print(
        f"ledger {args.ledger} OK: {checked.entries} entries, hash chain intact, every model "
        f"present and matching; D_f accuracy rechecked for {checked.accuracy_checked}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.json:
        check_writable(args.json)
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    ckpt, source = _load_model(args.model, data.name)
    _check_fit(ckpt, data, source)
    sets: dict[str, Any] = {"test": (data.test_x, data.test_y)}
    if args.forget:
        forget = parse_forget(args.forget, data.train_y)
        retain = _retain_eval(data, forget, args.retain_eval_size, 0)
        sets["forget"] = (data.train_x[forget], data.train_y[forget])
        sets["retain"] = (data.train_x[retain], data.train_y[retain])
    else:
        sets["retain"] = (data.train_x, data.train_y)
    metrics = amnesiac.evaluate(ckpt.model, **sets)
    rows = [[k, _fmt(v)] for k, v in metrics.items()]
    print(f"{source} on {data.name}")
    print(_table(rows, ["metric", "percent"]))
    if args.json:
        atomic_write_text(args.json, json.dumps(metrics, indent=2))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    out = check_writable(args.out)
    if args.shadows == 1 or args.shadows < 0:
        raise CLIError(f"--shadows must be 0 (no LiRA) or at least 2, got {args.shadows}")
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    original, o_src = _load_model(args.original, data.name)
    _check_fit(original, data, o_src)
    unlearned = load_checkpoint(args.model)
    _check_fit(unlearned, data, args.model)
    retrained = None
    if args.retrained:
        retrained = load_checkpoint(args.retrained)
        _check_fit(retrained, data, args.retrained)
    forget = parse_forget(args.forget, data.train_y)
    retain = _retain_eval(data, forget, args.retain_eval_size, args.seed)
    shadows = None
    if args.shadows:
        meta = original.meta
        if "recipe" not in meta:
            raise CLIError(
                f"{o_src} has no training recipe in its metadata, so shadow models cannot be "
                "trained like it; pass --shadows 0 to skip LiRA"
            )
        recipe = TrainRecipe(**meta["recipe"])
        print(f"LiRA: {args.shadows} shadow models ({meta['arch']}, cached under {args.cache})")
        shadows = train_shadows(
            data,
            meta["arch"],
            recipe,
            n=args.shadows,
            seed=args.seed,
            cache_dir=args.cache,
            progress=not args.no_progress,
        )
    result = amnesiac.audit(
        unlearned.model,
        original.model,
        forget=(data.train_x[forget], data.train_y[forget]),
        retain=(data.train_x[retain], data.train_y[retain]),
        test=(data.test_x, data.test_y),
        retrained=retrained.model if retrained else None,
        shadows=shadows,
        forget_indices=forget,
        relearn_max_steps=args.relearn_max_steps,
        seed=args.seed,
    )
    names = list(result["accuracy"])
    rows = []
    for key, label in (("forget_acc", "D_f accuracy %"), ("test_acc", "D_test accuracy %")):
        rows.append([label, *(_fmt(result["accuracy"][n][key]) for n in names)])
    for key, label in (
        ("mia_loss_member_rate", "MIA: D_f called members %"),
        ("mia_loss_auc", "MIA: AUC D_f vs D_test"),
        ("mia_entropy_auc", "MIA (entropy): AUC"),
    ):
        rows.append([label, *(f"{result['mia'][n][key]:.3f}" for n in names)])
    if "lira" in result:
        for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
            rows.append([f"LiRA {key}", *(f"{result['lira'][n][key]:.3f}" for n in names)])
    rows.append(["relearn steps", *(str(result["relearn_steps"][n]) for n in names)])
    if "cka" in result:
        rows.append(
            ["CKA vs original", *(f"{result['cka'].get(n, float('nan')):.4f}" for n in names)]
        )
    print(_table(rows, ["measure", *names]))
    if "distance" in result:
        d = result["distance"]["unlearned"]
        print(
            f"unlearned vs retrained: agreement {d['test']['agreement']:.2f}% on D_test, "
            f"{d['forget']['agreement']:.2f}% on D_f; JS {d['test']['js']:.4f} / "
            f"{d['forget']['js']:.4f} nats"
        )
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from amnesiac.bench import current_rows, load_grid, run_grid, write_report

    if args.workers is not None and args.workers < 1:
        raise InvalidSettingsError(f"--workers must be >= 1, got {args.workers}")
    grid = load_grid(args.grid, full_retain=args.full_retain)
    results = Path(args.results) if args.results else grid.path.parent / grid.results
    check_writable(results)
    if not args.report:
        t0 = time.perf_counter()

        def show(row: dict[str, Any]) -> None:
            if row.get("status") != "ok":
                tqdm_write(f"FAILED {row['label']} k={row['k']} seed={row['seed']}: {row['error']}")
            elif row.get("kind") == "unlearn":
                tqdm_write(
                    f"{row['label']:<22} k={row['k']:<4} seed={row['seed']} "
                    f"D_f {row['after_forget_acc']:6.2f}  D_r {row['after_retain_acc']:6.2f}"
                    f"  D_test {row['after_test_acc']:6.2f}  {row['seconds']['wall']:7.1f} s"
                )

        rows = run_grid(
            grid,
            results=results,
            progress=not args.no_progress,
            on_row=show,
            workers=args.workers,
        )
        print(f"{len(rows)} rows in {results} ({time.perf_counter() - t0:.0f} s this run)")
    else:
        rows = current_rows(grid, results)
        command = f"amnesiac bench {args.grid}" + (" --full-retain" if args.full_retain else "")
        path = write_report(grid, rows, command=command)
        print(f"wrote {path}")
    return 0


def tqdm_write(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text)


# ------------------------------------------------------------------ parser and main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make a trained image classifier forget specific training instances.",
    )
    parser.add_argument("--version", action="version", version=f"amnesiac {amnesiac.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("methods", help="list the unlearning methods")

    p = sub.add_parser("pretrain", help="train a classifier from scratch and save it")
    _add_data_flags(p)
    p.add_argument("--arch", default="resnet20", help="one of " + ", ".join(list_archs()))
    p.add_argument("--out", required=True, help="checkpoint to write (safetensors)")
    p.set_defaults(_recipe_fields=add_dataclass_flags(p, TrainRecipe))

    p = sub.add_parser(
        "unlearn",
        help="forget training instances and report before/after accuracy",
        description="Forget training instances. Method settings are flags; see "
        "`amnesiac unlearn --method NAME --help` for that method's.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="checkpoint to unlearn from (default: the model shipped for --dataset)",
    )
    _add_data_flags(p)
    p.add_argument(
        "--forget",
        required=True,
        help="random:K[:SEED], class:C:K[:SEED], or a .txt/.npy/.csv file of indices",
    )
    p.add_argument("--method", default="l2ul", help="unlearning method (see `amnesiac methods`)")
    p.add_argument("--preset", default=None, help="a named settings bundle, e.g. paper")
    p.add_argument(
        "--surrogate",
        default=None,
        help=SURROGATE_SPEC_HELP + "; for methods that accept it (l2ul). Test rows taken from "
        "the dataset's own test split are left out of D_test",
    )
    p.add_argument("--out", default=None, help="unlearned checkpoint to write")
    p.add_argument("--report", default=None, help="JSON report to write")
    p.add_argument("--forget-out", default=None, help="write the forget indices to this .txt")
    p.add_argument(
        "--retain-eval-size",
        type=int,
        default=0,
        help="evaluate D_r on a seeded subset of this size (0: all)",
    )
    p.add_argument(
        "--ledger",
        default=None,
        help="deletion ledger (JSON lines, hash-chained) to append this request to; the request "
        "must start from the ledger's latest model (needs --out)",
    )
    p.add_argument(
        "--hash-indices",
        action="store_true",
        help="store the SHA-256 of the forget indices in the ledger instead of the indices",
    )
    p.add_argument(
        "--request-id",
        default=None,
        help="ledger request id (default: a hash of the input model, forget set and settings)",
    )
    p.add_argument(
        "--from-original",
        action="store_true",
        help="with --ledger: re-solve every request so far and this one from the ledger's "
        "original model (--model must be the first request's input) instead of chaining from "
        "the latest model; the run forgets the union of their forget sets",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser(
        "continual",
        help="deletion requests in sequence, each re-solved from the original model (or "
        "chained from the previous one), with a ledger",
        description="Run the continual-unlearning scenario. Method settings are flags, as for "
        "`amnesiac unlearn`. Resumes from the ledger in --out.",
    )
    p.add_argument("--model", default=None, help="checkpoint to start from (default: shipped)")
    _add_data_flags(p)
    p.add_argument("--rounds", type=int, default=5, help="number of requests (default 5)")
    p.add_argument("--per-round", type=int, default=16, help="instances per request (default 16)")
    p.add_argument("--method", default="l2ul", help="a forget-only method (default l2ul)")
    p.add_argument("--preset", default=None, help="a named settings bundle, e.g. paper")
    p.add_argument("--out", required=True, help="folder for round models, ledger, JSON and plot")
    p.add_argument("--seed", type=int, default=0, help="seed of the instances drawn")
    p.add_argument(
        "--chained",
        action="store_true",
        help="start each round from the previous round's model (the paper's scenario) instead "
        "of re-solving every request so far from the original model (the default)",
    )
    p.add_argument("--retain-eval-size", type=int, default=10000, help="D_r sample size (0: all)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    p = sub.add_parser(
        "verify", help="check a deletion ledger: hashes, chain, models, D_f accuracy"
    )
    p.add_argument("ledger", help="ledger file (JSON lines)")
    p.add_argument("--data-dir", default=None, help="where the datasets are (as for unlearn)")
    p.add_argument(
        "--no-accuracy", action="store_true", help="skip reloading data to recheck D_f accuracy"
    )

    p = sub.add_parser("evaluate", help="accuracy of a model on D_f, D_r and D_test")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    _add_data_flags(p)
    p.add_argument("--forget", default=None, help="forget set spec or file")
    p.add_argument(
        "--retain-eval-size",
        type=int,
        default=0,
        help="evaluate D_r on a seeded subset of this size (0: all)",
    )
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")

    p = sub.add_parser(
        "audit", help="evidence that a model forgot: membership attacks, distance, relearn, CKA"
    )
    p.add_argument("--model", required=True, help="the unlearned checkpoint")
    p.add_argument(
        "--original", default=None, help="the model before unlearning (default: shipped)"
    )
    p.add_argument("--retrained", default=None, help="a model retrained without D_f (optional)")
    _add_data_flags(p)
    p.add_argument("--forget", required=True, help="forget set spec or file")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument(
        "--shadows",
        type=int,
        default=8,
        help="shadow models for LiRA, trained once with the original's recipe and cached "
        "(0: skip LiRA; default 8)",
    )
    p.add_argument("--cache", default=str(default_cache_dir()), help="shadow-model cache folder")
    p.add_argument(
        "--retain-eval-size",
        type=int,
        default=10000,
        help="members sample for the population attacks (seeded subset of D_r; 0: all)",
    )
    p.add_argument("--relearn-max-steps", type=int, default=200, help="cap of the relearn time")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks and samples")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    p = sub.add_parser("bench", help="run a benchmark grid and/or write its RESULTS.md")
    p.add_argument(
        "grid",
        nargs="?",
        default="benchmarks/fashion_mnist.yaml",
        help="grid YAML file (default: benchmarks/fashion_mnist.yaml)",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="write RESULTS.md and the plots from the rows already there (runs nothing)",
    )
    p.add_argument("--results", default=None, help="results file (default: from the grid)")
    p.add_argument(
        "--full-retain",
        action="store_true",
        help="measure D_r on all retained instances instead of a 10,000 subset",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="cells run at once, each in its own process with an equal share of the torch "
        "threads (default: the grid's 'workers', else 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _help_with_method(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``amnesiac unlearn --help`` also lists the chosen method's settings."""
    method = "l2ul"
    if "--method" in argv and argv.index("--method") + 1 < len(argv):
        method = argv[argv.index("--method") + 1]
    subparsers = parser._subparsers
    assert subparsers is not None  # build_parser adds them
    action = subparsers._group_actions[0]
    sub = action.choices["unlearn"]  # type: ignore[index]
    group = sub.add_argument_group(f"settings of method {method!r}")
    add_dataclass_flags(group, amnesiac.get_method(method).config_cls)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or a failed request)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv[:1] == ["unlearn"] and ("-h" in argv or "--help" in argv):
            _help_with_method(parser, argv)
        args, extra = parser.parse_known_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        if args.command is None:
            parser.print_help()
            return 2
        if args.command not in ("unlearn", "continual") and extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "methods":
            return cmd_methods(args)
        if args.command == "pretrain":
            return cmd_pretrain(args)
        if args.command == "unlearn":
            return cmd_unlearn(args, extra)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "audit":
            return cmd_audit(args)
        if args.command == "continual":
            return cmd_continual(args, extra)
        if args.command == "verify":
            return cmd_verify(args)
        return cmd_evaluate(args)
    except (AmnesiacError, OutputPathError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        return int(e.code) if isinstance(e.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
