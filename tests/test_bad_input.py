"""The bad-input catalog: every case exits 2 with one clear line, no traceback, nothing written."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import amnesiac
from amnesiac.cli import main
from amnesiac.data import parse_forget
from amnesiac.ledger import append_entry
from amnesiac.models import create_model, model_meta, pretrained_path


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("open('PWNED', 'w').write('x')",))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Bad (and good) input files, in their own folder."""
    d = tmp_path_factory.mktemp("inputs")
    digits = amnesiac.load_dataset("digits")
    out: dict[str, str] = {"shipped": str(pretrained_path("digits"))}

    def save(name: str, model: torch.nn.Module, **meta_changes: object) -> None:
        meta = model_meta("cnn", in_channels=1, num_classes=10, mean=digits.mean,
                          std=digits.std, input_shape=[1, 8, 8], dataset="digits")  # fmt: skip
        meta.update(meta_changes)
        amnesiac.save_checkpoint(model, d / name, meta)
        out[name] = str(d / name)

    cnn = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
    save("good.safetensors", cnn)
    save("wrong_arch.safetensors", cnn, arch="resnet20")
    cnn3 = create_model("cnn", in_channels=1, num_classes=3, mean=digits.mean, std=digits.std)
    save("three_classes.safetensors", cnn3, num_classes=3)
    nan = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
    with torch.no_grad():
        next(nan.parameters()).fill_(float("nan"))
    save("nan.safetensors", nan)
    (d / "corrupt.safetensors").write_bytes(b"\x00\x01 not a checkpoint")
    (d / "evil.pt").write_bytes(pickle.dumps(_RunsCode()))
    (d / "truncated.safetensors").write_bytes((d / "good.safetensors").read_bytes()[:200])
    texts = {
        "range.txt": "0\n99999\n",
        "dup.txt": "3\n3\n",
        "empty.txt": "# nothing\n",
        "nonint.txt": "1\nabc\n",
        "float.txt": "1.5\n",
        "negative.txt": "-4\n",
    }
    for name, text in texts.items():
        (d / name).write_text(text)
        out[name] = str(d / name)
    out.update({n: str(d / n) for n in ("corrupt.safetensors", "evil.pt", "truncated.safetensors")})
    out["notafile"] = str(d)  # a folder given as the forget file
    # a ledger whose chain was edited
    ledger = d / "edited.jsonl"
    append_entry(ledger, {"request_id": "a", "output_model": "x", "output_sha256": "0" * 64})
    append_entry(ledger, {"request_id": "b", "output_model": "y", "output_sha256": "1" * 64})
    ledger.write_text(ledger.read_text().replace('"request_id":"a"', '"request_id":"z"'))
    out["edited.jsonl"] = str(ledger)
    out["dir"] = str(d)
    (d / "no_images").mkdir()
    out["no_images"] = str(d / "no_images")
    # a grid whose results file has a damaged line in the middle (not a torn last write)
    (d / "grid.yaml").write_text(
        "name: g\ndataset: digits\nks: [4]\nseeds: [0]\nspeed: false\n"
        "results: damaged.jsonl\nreport: G.md\nmethods: [neg_grad]\n"
    )
    row = (
        '{"id": "a", "kind": "unlearn", "label": "neg_grad", "method": "neg_grad", "k": 4, '
        '"seed": 0, "status": "ok"}'
    )
    (d / "damaged.jsonl").write_text(f"{row}\nnot json at all}}\n{row}\n")
    out["grid.yaml"] = str(d / "grid.yaml")
    return out


def U(*extra: str, model: str = "good.safetensors", forget: str = "random:4") -> list[str]:
    return ["unlearn", "--dataset", "digits", "--model", model, "--forget", forget,
            "--method", "neg_grad", "--max-steps", "2", *extra]  # fmt: skip


CATALOG: list[tuple[str, list[str], str]] = [
    ("missing checkpoint", U(model="missing.safetensors"), "does not exist"),
    ("corrupt checkpoint", U(model="corrupt.safetensors"), "not a safetensors"),
    ("truncated checkpoint", U(model="truncated.safetensors"), "truncated.safetensors"),
    ("pickle that would run code", U(model="evil.pt"), "pickle"),
    ("wrong architecture", U(model="wrong_arch.safetensors"), "wrong_arch.safetensors"),
    ("wrong class count", U(model="three_classes.safetensors"), "3"),
    ("NaN weights", U(model="nan.safetensors"), "NaN"),
    ("index out of range", U(forget="range.txt"), "99999"),
    ("duplicated indices", U(forget="dup.txt"), "duplicate"),
    ("empty forget set", U(forget="empty.txt"), "empty"),
    ("non-integer index", U(forget="nonint.txt"), "abc"),
    ("fractional index", U(forget="float.txt"), "1.5"),
    ("negative index", U(forget="negative.txt"), "-4"),
    ("forget file missing", U(forget="nope.txt"), "nope.txt"),
    ("forget path is a folder", U(forget="notafile"), "inputs"),
    ("forget spec asks for zero", U(forget="random:0"), "random:0"),
    (
        "dataset not there",
        ["unlearn", "--dataset", "folder:/no/such/dir", "--forget", "random:4"],
        "/no/such/dir",
    ),
    ("unknown dataset", ["unlearn", "--dataset", "digitz", "--forget", "random:4"], "digits"),
    ("settings value of the wrong type", U("--lr", "fast"), "--lr"),
    ("settings value out of range", U("--lr", "-1"), "lr must be > 0"),
    ("negative step budget", U("--max-steps", "-5"), "max_steps"),
    (
        "unknown method",
        ["unlearn", "--dataset", "digits", "--forget", "random:4", "--method", "l2u1"],
        "l2ul",
    ),
    ("unknown preset", U("--preset", "fast"), "fast"),
    ("output folder does not exist", U("--out", "OUT/no/such/m.safetensors"), "does not exist"),
    ("output path is a folder", U("--out", "OUT"), "is a folder"),
    ("page folder does not exist", U("--html", "OUT/no/such/page.html"), "does not exist"),
    ("ledger without --out", U("--ledger", "OUT/l.jsonl"), "--ledger needs --out"),
    (
        "ledger whose chain was edited",
        U("--out", "OUT/m.safetensors", "--ledger", "edited.jsonl"),
        "broken at entry 1",
    ),
    ("verify an edited ledger", ["verify", "edited.jsonl"], "broken at entry 1"),
    ("verify a missing ledger", ["verify", "OUT/none.jsonl"], "does not exist"),
    (
        "continual with a retain method",
        ["continual", "--dataset", "digits", "--method", "finetune", "--out", "OUT/run"],
        "needs the retained",
    ),
    (
        "pretrain reserving every image",
        ["pretrain", "--dataset", "digits", "--reserve", "5000", "--out", "OUT/m.safetensors"],
        "reserve between 0",
    ),
    (
        "attach anchors from an empty folder",
        [
            "attach-anchors",
            "--model",
            "shipped",
            "--dataset",
            "digits",
            "--anchors",
            "no_images",
            "--out",
            "OUT/m.safetensors",
        ],
        "no image files",
    ),
    (
        "attach anchors from a training split",
        [
            "attach-anchors",
            "--model",
            "shipped",
            "--dataset",
            "digits",
            "--anchors",
            "digits:train",
            "--out",
            "OUT/m.safetensors",
        ],
        "training split",
    ),
    (
        "attach anchors of another shape",
        [
            "attach-anchors",
            "--model",
            "shipped",
            "--dataset",
            "digits",
            "--anchors",
            "fashion-mnist:test:0:10",
            "--out",
            "OUT/m.safetensors",
        ],
        "(1, 28, 28)",
    ),
    (
        "surrogate folder without images",
        U("--surrogate", "no_images", "--method", "l2ul"),
        "no image files",
    ),
    (
        "surrogate of another shape",
        U("--surrogate", "fashion-mnist:test:0:10", "--method", "l2ul"),
        "(1, 28, 28)",
    ),
    (
        "evaluate a missing model",
        ["evaluate", "--dataset", "digits", "--model", "nope.st"],
        "does not exist",
    ),
    (
        "report of a missing report",
        ["report", "OUT/none.json", "--html", "OUT/p.html"],
        "none.json",
    ),
    ("bench of a missing grid", ["bench", "OUT/none.yaml"], "none.yaml"),
    ("bench rows with a damaged line", ["bench", "grid.yaml", "--report"], "line 2"),
    (
        "audit with one shadow model",
        [
            "audit",
            "--dataset",
            "digits",
            "--model",
            "good.safetensors",
            "--forget",
            "random:4",
            "--out",
            "OUT/a.json",
            "--shadows",
            "1",
        ],
        "--shadows",
    ),
]


@pytest.mark.parametrize(("case", "argv", "message"), CATALOG, ids=[c[0] for c in CATALOG])
def test_bad_input(case: str, argv: list[str], message: str, files: dict[str, str],
                   tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(tmp_path)

    def resolve(a: str) -> str:
        if a.startswith("OUT"):
            return str(out_dir) + a[3:]
        return files.get(a, a)

    argv = [resolve(a) for a in argv]
    if "--out" not in argv and argv[0] == "unlearn":
        argv += ["--report", str(out_dir / "report.json")]
    takes_progress = argv[0] in ("unlearn", "continual", "audit")
    code = main([*argv, "--no-progress"] if takes_progress else argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (case, captured.out, err)
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("amnesiac: error")]
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    assert list(out_dir.iterdir()) == [], case  # nothing written
    assert not (tmp_path / "PWNED").exists()  # no pickle code ran


def test_catalog_has_at_least_20_cases() -> None:
    assert len(CATALOG) >= 20


@given(st.lists(st.integers(min_value=0, max_value=99), min_size=1, max_size=30, unique=True))
def test_parse_forget_round_trips_valid_lists(indices: list[int]) -> None:
    y = torch.zeros(100, dtype=torch.long)
    assert parse_forget(indices, y).tolist() == indices


@given(st.lists(st.integers(min_value=-50, max_value=150), min_size=0, max_size=30))
def test_parse_forget_accepts_only_valid_sets(indices: list[int]) -> None:
    y = torch.zeros(100, dtype=torch.long)
    valid = (
        bool(indices) and len(set(indices)) == len(indices) and all(0 <= i < 100 for i in indices)
    )
    try:
        got = parse_forget(indices, y)
    except amnesiac.InvalidForgetSetError:
        assert not valid
    else:
        assert valid and got.tolist() == indices


@given(st.integers(min_value=-3, max_value=120), st.integers(min_value=0, max_value=2**31))
def test_parse_forget_random_spec(k: int, seed: int) -> None:
    y = torch.zeros(100, dtype=torch.long)
    try:
        got = parse_forget(f"random:{k}:{seed}", y)
    except amnesiac.InvalidForgetSetError:
        assert not 1 <= k <= 100
    else:
        assert 1 <= k <= 100 and len(got) == k and len(set(got.tolist())) == k
        assert torch.equal(got, parse_forget(f"random:{k}:{seed}", y))  # seeded


@given(st.text(max_size=40))
def test_parse_forget_never_crashes_on_text(spec: str) -> None:
    y = torch.zeros(100, dtype=torch.long)
    with contextlib.suppress(amnesiac.InvalidForgetSetError):
        parse_forget(spec, y)
