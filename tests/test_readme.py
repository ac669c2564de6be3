"""The README's "Writing a method" block runs as written and passes amnesiac.testing's checks."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import torch

from amnesiac.methods import registry
from amnesiac.testing import check_method

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(section: str) -> str:
    text = README.read_text().split(f"## {section}", 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


def test_the_readme_method_is_under_40_lines_and_keeps_the_contract(
    tiny_model: torch.nn.Module, forget8: tuple[torch.Tensor, torch.Tensor]
) -> None:
    code = _block("Writing a method")
    assert len([line for line in code.splitlines() if line.strip()]) < 40
    module = types.ModuleType("readme_method")  # dataclasses look their module up
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(README), "exec"), module.__dict__)
        result = check_method("hinge", tiny_model, forget8)
        assert result.forgotten and result.config["margin"] == 1.0
    finally:
        registry._REGISTRY.pop("hinge", None)  # leave the registry as the other tests expect
        sys.modules.pop(module.__name__, None)
