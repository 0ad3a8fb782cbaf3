"""Exit codes of the `mlcycle` CLI: the contract between a step process and its launcher.

Standard library only: both the step processes and the Airflow side (which parses DAGs) import it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a step's exit status means, and so what Airflow does with it (same in both launchers)."""

    OK = 0
    #: The command line, or the use-case configuration it names, is unusable: a malformed or out-of-range
    #: argument, a use-case name or contract path that leaves the use-case folder, an invalid usecase.yaml.
    #: Only a person can fix it, so both launchers fail the task without retry (AirflowFailException) with
    #: the message naming the argument, and its failure alert goes out at once. 64 is EX_USAGE from sysexits.h
    #: (argparse's own 2 would read as an error and be retried).
    USAGE = 64
    #: The step refuses its input: a data contract failed, a gate said no, a compare-and-set lost.
    #: Retrying cannot help, so the task fails without retry and an alert names the reason.
    #: 65 is EX_DATAERR from sysexits.h.
    REJECTED = 65
    #: Nothing to do (no champion yet, not enough data, decision was not to promote): the task is skipped.
    NOTHING_TO_DO = 99
    #: Anything else (1, signals, OOM kills) is an infrastructure error and is retried.
    ERROR = 1


STATUS_BY_CODE = {
    ExitCode.OK: "success",
    ExitCode.USAGE: "usage_error",
    ExitCode.REJECTED: "rejected",
    ExitCode.NOTHING_TO_DO: "skipped",
    ExitCode.ERROR: "error",
}

#: Exit codes a retry cannot change: the task fails at once (no retry), and its failure alert names the reason.
NOT_RETRIED = frozenset({ExitCode.USAGE, ExitCode.REJECTED})
