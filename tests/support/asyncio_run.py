"""Run a coroutine to completion from a test, whatever event loop this thread may hold.

Under `make test`'s two workers, a worker's main thread was found still marked as running an event loop after an
earlier test of that worker (which one was not pinned down), and `asyncio.run` refuses to start in such a thread.
A fresh thread has no loop: the coroutine runs there, as the triggerer runs a trigger in its own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def in_fresh_thread(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a thread of its own (no event loop marked running there), for code that calls
    `asyncio.run` itself, e.g. the cncf-kubernetes provider's operators; its result, or its exception."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(function, *args).result()


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` in a thread of its own; returns its result or raises its exception."""
    return in_fresh_thread(asyncio.run, coroutine)
