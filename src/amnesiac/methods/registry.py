"""The registry of unlearning methods: :func:`register` adds one, :func:`get_method` finds it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amnesiac._names import suggest
from amnesiac.errors import InvalidSettingsError, UnknownNameError

if TYPE_CHECKING:
    from amnesiac.methods.base import Unlearner
    from amnesiac.methods.settings import UnlearnConfig


@dataclass(frozen=True)
class MethodInfo:
    """Registry entry of a method."""

    name: str
    cls: type[Unlearner]
    config_cls: type[UnlearnConfig]
    reads: tuple[str, ...]
    summary: str
    reference: str
    accepts: tuple[str, ...] = ()

    @property
    def needs_retain(self) -> bool:
        return "retain" in self.reads

    def uses(self, optional_input: str) -> bool:
        """Whether the method reads ``optional_input`` (``"retain"``, ``"surrogate"``), needing
        it or using it when given."""
        return optional_input in (*self.reads, *self.accepts)

    def inputs(self, **available: Any) -> dict[str, Any]:
        """Of the optional inputs the caller has (``retain=``, ``surrogate=``; ``None`` for
        one it does not have), those this method uses: the one rule by which the CLI, the
        bench and :func:`amnesiac.unlearn`'s callers hand a method its data.

        Example:
            >>> sorted(get_method("amun").inputs(retain="D_r", surrogate="images"))
            ['retain']
        """
        return {k: v for k, v in available.items() if v is not None and self.uses(k)}


_REGISTRY: dict[str, MethodInfo] = {}


def register(cls: type[Unlearner]) -> type[Unlearner]:
    """Class decorator adding a method to the registry; duplicate names are refused."""
    if not cls.name:
        raise InvalidSettingsError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise InvalidSettingsError(
            f"method {cls.name!r} is already registered by {_REGISTRY[cls.name].cls.__name__}"
        )
    _REGISTRY[cls.name] = MethodInfo(
        cls.name, cls, cls.config_cls, cls.reads, cls.summary, cls.reference, cls.accepts
    )
    return cls


def get_method(name: str) -> MethodInfo:
    """The registry entry of ``name``; unknown names get the valid list and the closest match."""
    if name not in _REGISTRY:
        raise UnknownNameError(suggest(name, _REGISTRY, "method"))
    return _REGISTRY[name]


def accepting(optional_input: str) -> list[str]:
    """Names of the registered methods that use ``optional_input`` (e.g. ``"surrogate"``),
    whether they need it or take it when given."""
    return sorted(name for name, info in _REGISTRY.items() if info.uses(optional_input))


def registered() -> dict[str, MethodInfo]:
    """All registered methods by name."""
    return dict(_REGISTRY)


def data_parallel_methods() -> list[str]:
    """The registered methods that train data-parallel under torchrun."""
    return sorted(name for name, info in _REGISTRY.items() if info.cls.data_parallel)


def forget_only_cost(cls: type[Unlearner], k: int) -> tuple[int, float] | None:
    """The measured ``(k, drop)`` of ``cls`` without anchors nearest to ``k`` (on a log scale),
    or ``None`` where the method records none.

    Example:
        >>> from amnesiac.methods.l2ul import L2UL
        >>> forget_only_cost(L2UL, 40)
        (32, 2.35)
    """
    if not cls.forget_only_cost:
        return None
    return min(cls.forget_only_cost, key=lambda kd: abs(math.log(kd[0]) - math.log(max(k, 1))))
