"""Registration of beamtrack records as JAX pytrees, without importing JAX.

Records call :func:`ensure_registered` when they are built; it registers every
pending class with ``jax.tree_util`` as soon as JAX has been imported by the user
(``import beamtrack`` never imports JAX itself). A record built before JAX is imported
is registered the first time any record is built afterwards, which always happens
before JAX sees one (a record must exist to be passed to a JAX transformation).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_pending: list[tuple[type, Callable[..., Any], Callable[..., Any]]] = []
_registered: set[type] = set()


def register_pytree(
    cls: type,
    flatten: Callable[[Any], tuple[tuple[Any, ...], Any]],
    unflatten: Callable[[Any, tuple[Any, ...]], Any],
) -> None:
    """Queue ``cls`` for registration as a JAX pytree node.

    Parameters
    ----------
    cls
        The record class.
    flatten
        ``obj -> (children, aux_data)``; children are arrays, aux_data is hashable.
    unflatten
        ``(aux_data, children) -> obj``.
    """
    _pending.append((cls, flatten, unflatten))
    ensure_registered()


def ensure_registered() -> None:
    """Register queued classes with JAX if (and only if) JAX is already imported."""
    if not _pending or "jax" not in sys.modules:
        return
    import jax

    while _pending:
        cls, flatten, unflatten = _pending.pop()
        if cls not in _registered:
            jax.tree_util.register_pytree_node(cls, flatten, unflatten)
            _registered.add(cls)
