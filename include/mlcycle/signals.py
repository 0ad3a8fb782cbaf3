"""SIGTERM ends a step like an exception, so its `finally` blocks run before the process exits.

Airflow's local launcher (`on_kill`), Kubernetes (pod eviction, deletion, `execution_timeout`) and an operator's
`kill` all stop a step with SIGTERM. Python's default is to die on the spot: a promote holding the registry lease
would leave it behind, a step would leave its staging folder. With `exit_on_sigterm()` the signal raises
`Terminated` (a SystemExit: no `except Exception` in step code swallows it) in the main thread, the stack unwinds
through every `finally` and context manager, and the process exits 143 (128 + SIGTERM): an error, so Airflow
retries and then alerts. Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)


class Terminated(SystemExit):
    """The process received SIGTERM; raised in the main thread wherever it was."""


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """For the block, SIGTERM raises Terminated(143); the previous handler is restored afterwards."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        # One unwinding is enough: a second SIGTERM must not interrupt the clean-up the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.error("SIGTERM received: stopping, releasing what this step holds")
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
