"""The task image ships the runtime only: no dev tooling or test code reaches its build context or package.

Docker sends the build context that .dockerignore leaves, and the Dockerfile copies parts of it; both are
read here as Docker reads them (no Docker engine needed).
"""

from __future__ import annotations

import re
import subprocess

from mlcycle.settings import REPO_ROOT

#: Paths that are dev tooling or test code: none may be in the context the image is built from.
DEV_ONLY = (
    re.compile(r"^dev/"),
    re.compile(r"^tests/"),
    re.compile(r"^include/mlcycle/(stack|benchmarks)/"),
    re.compile(r"^include/mlcycle/(demo|testing)\.py$"),
)
#: Everything the Dockerfile copies from the context.
COPIED = {
    "requirements-task.lock",
    "requirements-airflow.lock",
    "pyproject.toml",
    "README.md",
    "include/mlcycle",
    "include/usecases",
    "docker/spark-entrypoint.sh",  # the Spark build's entrypoint (target task-spark)
    "docker/mlcycle-step.py",  # and its SparkApplications' main file
    "docker/spark-jars/",  # the S3A jars a SPARK_S3A=1 build adds to Spark's classpath (none are committed)
}


def _pattern(line: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex on slash-separated relative paths."""
    body = line.strip().strip("/")
    regex = ""
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            regex, i = regex + "(.*/)?", i + 3
        elif body.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif body[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif body[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(body[i]), i + 1
    return re.compile(f"^{regex}$")


def build_context(files: list[str], dockerignore: str) -> list[str]:
    """The files Docker sends: the last matching rule wins; a rule on a folder covers what is inside it."""
    rules = []
    for raw in dockerignore.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.lstrip("!"))))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for negated, pattern in rules:
            if any(pattern.match(p) for p in prefixes):
                verdict = not negated
        return verdict

    return [f for f in files if not excluded(f)]


def repository_files() -> list[str]:
    """What a clean clone holds (CI builds from one): tracked files and new ones that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({f for f in listed.splitlines() if (REPO_ROOT / f).is_file()})


def test_the_build_context_holds_no_dev_tooling_or_tests() -> None:
    context = build_context(repository_files(), (REPO_ROOT / ".dockerignore").read_text())
    assert "include/mlcycle/cli.py" in context and "requirements-task.lock" in context, "the matcher lost the runtime"
    leaked = [f for f in context if any(p.search(f) for p in DEV_ONLY)]
    assert leaked == [], f"dev tooling or tests in the image's build context (.dockerignore): {leaked}"


def test_the_dockerfile_copies_the_runtime_only() -> None:
    sources: set[str] = set()
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.update(args[:-1])  # the last argument is the destination
    assert sources <= COPIED, f"the Dockerfile copies more than the runtime: {sorted(sources - COPIED)}"
    assert "include/mlcycle" in sources


def test_the_context_matcher_reads_dockerignore_as_docker_does() -> None:
    files = ["a.txt", "include/x.py", "include/p/__pycache__/x.pyc", "include/m.egg-info/PKG-INFO", "dev/y.py"]
    rules = "*\n!include/\ninclude/**/__pycache__/\ninclude/*.egg-info/\n"
    assert build_context(files, rules) == ["include/x.py"]
