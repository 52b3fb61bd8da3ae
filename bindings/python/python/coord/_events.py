"""Runs user callbacks on the library's one callback thread (called from the Rust side)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from ._types import _EVENT_TYPES, WatchedEvent
from .exceptions import _from_code

log = logging.getLogger("coord")


def dispatch(callback: Callable[..., Any], kind: str, a: str, b: str, c: int) -> None:
    """Calls ``callback`` for one event; an exception inside it is logged, never raised
    (raising here would stop nothing but the report)."""
    try:
        if kind == "watch":
            callback(WatchedEvent(_EVENT_TYPES.get(a, a), "CONNECTED", b, c))
        elif kind == "watch_end":
            # The session ended before the watch fired: kazoo passes no event then either;
            # a callback that wants to know takes `_on_end`.
            on_end = getattr(callback, "_on_end", None)
            if on_end is not None:
                on_end(_from_code(a, 0, b) if a != "Ended" else None)
        elif kind == "cache":
            callback(a, b)
        else:
            callback(a)
    except Exception:
        log.exception("exception in coord callback %r", callback)
