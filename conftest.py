"""Names the docstring examples under src/amnesiac use (pytest runs them with --doctest-modules):
the shipped digits model, eight of its training instances to forget, and its test split."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict[str, Any]) -> None:
    import amnesiac

    doctest_namespace["amnesiac"] = amnesiac
    if "model" not in doctest_namespace:
        data = amnesiac.load_dataset("digits")
        idx = amnesiac.parse_forget("random:8:0", data.train_y)
        doctest_namespace.update(
            model=amnesiac.load_pretrained("digits").model,
            x_f=data.train_x[idx],
            y_f=data.train_y[idx],
            x_t=data.test_x,
            y_t=data.test_y,
        )
