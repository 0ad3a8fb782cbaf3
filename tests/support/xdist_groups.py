"""Which tests share a worker under `pytest -n N --dist loadgroup` (`make test`).

A module's tests stay on one worker, so a module-scoped set-up (an Airflow stack, a trained champion, the
container lifecycle) is built once, not once per worker. Some folders go further and share one worker as a whole:
the browser tests share one expensive package-scoped stack; the container tests (and the container fault drills)
drive the machine-wide podman (pods, volumes, secrets, the OOM killer's view of memory), so they run one after
another; the Spark tests share one SparkSession (one JVM, started once: tests/spark/conftest.py).

Why a scheduler and not `xdist_group` marks: pytest-xdist 3.8 groups marked tests by appending `@group` to
`item._nodeid`, which pytest 9.2 no longer reads (a node's id is `item._id`), so the marks were silently ignored
and every module's tests were spread over both workers -- the container lifecycle (~390 s) was set up twice. The
controller's scheduler sees only node ids, and a node id's path is all the grouping needs.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

#: A folder (or module) name → the group of every test under it.
GROUPS = {
    "browser": "browser",
    "containers": "containers",
    "test_faults_containers.py": "containers",
    "spark": "spark",
}


def group_of(relative: PurePosixPath) -> str:
    """The group of a test module given by its path under tests/: a named group, else the module itself."""
    for part in relative.parts:
        if part in GROUPS:
            return GROUPS[part]
    return relative.as_posix()


def make_scheduler(config: Any, log: Any, tests_root: Path) -> Any:
    """xdist's scope scheduler, with a test's scope being its group (None unless `--dist loadgroup`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = Path(config.rootpath)

    class ByGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = (root / nodeid.split("::", 1)[0]).resolve()
            return group_of(PurePosixPath(module.relative_to(tests_root.resolve()).as_posix()))

    return ByGroup(config, log)
