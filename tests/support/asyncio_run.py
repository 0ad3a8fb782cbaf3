"""Run a coroutine to completion from a test, whatever event loop this thread may hold.

Under `make test`'s two workers, a worker's main thread was found still marked as running an event loop after an
earlier test of that worker (which one was not pinned down), and `asyncio.run` refuses to start in such a thread.
A fresh thread has no loop: the coroutine runs there, as the triggerer runs a trigger in its own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` in a thread of its own; returns its result or raises its exception."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coroutine).result()
