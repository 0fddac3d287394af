"""What every dynamic provider in this program shares: how it is pickled."""

from __future__ import annotations

from typing import Any, TypeVar

_Shipped = TypeVar("_Shipped")


def ship_by_value(obj: _Shipped) -> _Shipped:
    """Make dill pickle a dynamic provider class (and its methods) by value, not by import path.

    dill pickles anything importable by reference (``components.x.Provider``), so the provider
    host, which the engine may start from another directory, must import this repository to
    unpickle it; old state also breaks when the module is renamed. Objects whose
    ``__module__`` is ``__main__`` are pickled by value, code included. Pulumi once did this
    rewrite itself (https://github.com/pulumi/pulumi/pull/7755 for
    https://github.com/pulumi/pulumi/issues/7453); the SDK pinned here does not, so we do it.

    Only the class body is rewritten: a method must not call module-level helpers of this
    repository (use staticmethods), and may import installed packages only.
    """
    _mark_main(obj)
    for member in vars(obj).values() if isinstance(obj, type) else ():
        _mark_main(getattr(member, "__func__", member))
    return obj


def _mark_main(member: Any) -> None:
    if isinstance(member, type) or hasattr(member, "__code__"):
        member.__module__ = "__main__"
