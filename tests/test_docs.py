"""The README and docs/ hold true: their Python blocks run as written, every command line they
show parses with the real parser (method flags included), and every relative link resolves."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest
import torch

from amnesiac.cli import build_parser
from amnesiac.cli.common import method_config
from amnesiac.methods import registry
from amnesiac.testing import check_method

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
    ROOT / "benchmarks" / "JOURNAL.md",
]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def blocks(path: Path, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of ``path``, in order."""
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def _exec(code: str, name: str) -> dict:
    module = types.ModuleType(name)  # dataclasses look their module up
    sys.modules[name] = module
    try:
        exec(compile(code, name, "exec"), module.__dict__)
    finally:
        sys.modules.pop(name, None)
    return module.__dict__


def test_the_method_in_writing_a_method_is_under_40_lines_and_keeps_the_contract(
    tiny_model: torch.nn.Module, forget8: tuple[torch.Tensor, torch.Tensor]
) -> None:
    (code,) = blocks(ROOT / "docs" / "writing-a-method.md", "python")
    assert len([line for line in code.splitlines() if line.strip()]) < 40
    try:
        _exec(code, "docs_method")
        result = check_method("hinge", tiny_model, forget8)
        assert result.forgotten and result.config["margin"] == 1.0
    finally:
        registry._REGISTRY.pop("hinge", None)  # leave the registry as the other tests expect


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
@pytest.mark.parametrize("doc", ["README.md", "docs/ledger.md", "docs/python.md"])
def test_the_python_examples_run_as_written(doc, tmp_path, monkeypatch):
    # every block of a page, in order, in one namespace: a page's later blocks use its first's
    monkeypatch.chdir(tmp_path)  # they write their files where they run
    code = "\n".join(blocks(ROOT / doc, "python"))
    _exec(code, "docs_example")


def _command_lines(path: Path) -> list[list[str]]:
    """Every ``amnesiac ...`` (or ``torchrun ... -m amnesiac ...``) line of the bash blocks,
    continuation lines joined, comments and optional ``[...]`` parts dropped."""
    out = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).strip()
            if "..." in line or "<" in line:
                continue
            words = shlex.split(line)
            if words[:1] == ["amnesiac"]:
                out.append(words[1:])
            elif words[:1] == ["torchrun"] and "amnesiac" in words:
                out.append(words[words.index("amnesiac") + 1 :])
    return out


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_in_the_docs_parses(path):
    parser = build_parser()
    for argv in _command_lines(path):
        if argv in (["--version"], ["methods"]) or "--help" in argv:
            continue  # they print and exit
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "takes_extra", False) and getattr(args, "method", None):
            method_config(args, extra)  # the method's own flags, as the command parses them
        else:
            assert not extra, f"{path.name}: amnesiac {' '.join(argv)}: unknown {extra}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.name}: link {target} points at nothing"
        if anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", dest.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{path.name}: no #{anchor} in {file}"


def test_the_readme_is_one_screen_of_decisions():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    order = ["## Install", "## Quick start", "## Choosing a method", "## Commands",
             "## Benchmarks", "## Documentation"]  # fmt: skip
    at = [next(i for i, line in enumerate(lines) if line.startswith(h)) for h in order]
    assert at == sorted(at)


def test_the_docs_are_free_of_issue_numbers():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert not re.search(r"\bissue \d+", path.read_text(), re.I), path.name
