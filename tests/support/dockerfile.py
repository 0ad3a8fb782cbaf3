"""The Dockerfile read as Docker reads it (stages, their instructions), for the image tests of tests/k8s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and stages; continuation lines joined and comment lines dropped, as Docker does."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"^(\S+)\s+AS\s+(\S+)$", arg, re.I)
            assert match, f"every stage is named: {line}"
            stages.append(Stage(match[1], match[2]))
        elif not stages and keyword == "ARG":
            name, _, default = arg.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, arg))
    return global_args, stages


def shipped(by_name: dict[str, Stage], name: str) -> Stage:
    """A target as it ships: its instructions after those of the stages it is built on (`task` on
    `task-runtime`)."""
    stage = by_name[name]
    if stage.base not in by_name:
        return stage
    parent = shipped(by_name, stage.base)
    return Stage(parent.base, name, [*parent.instructions, *stage.instructions])
