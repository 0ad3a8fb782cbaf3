"""The container engine of this machine: docker when its daemon answers, else podman, with the flags that make
podman work in a sandbox (see ../shared ENVIRONMENT notes and docs/deploy.md "Images"):

- cgroups v1 (or no systemd): `--cgroup-manager=cgroupfs`;
- a sandbox that forbids setting another process's rlimits: `--runtime` = `runc_without_rlimits` (this folder),
  which removes `process.rlimits` from the bundle before exec'ing runc.

Standard library only. `Engine.argv(...)` is the command line to run; `Engine.run(...)` runs it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNC_WRAPPER = HERE / "runc_without_rlimits"


class EngineUnavailable(RuntimeError):
    """No container engine can run here (the message says what is missing)."""


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    global_args: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        return [self.name, *self.global_args, *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        capture: bool = True,
        timeout: float | None = None,
        input: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), check=check, capture_output=capture, text=True, timeout=timeout, input=input, cwd=cwd
        )

    def image_exists(self, ref: str) -> bool:
        if self.name == "podman":
            return self.run("image", "exists", ref, check=False).returncode == 0
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())

    def image_digest(self, ref: str) -> str:
        """The image's content digest (sha256:...), as `FROM name@digest` resolves it."""
        return self.run("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()


#: The open-files limit podman gives a container (runc sets it on the container's first process).
PODMAN_NOFILE = 1048576


def _rlimits_settable() -> bool:
    """Whether this process may give another process podman's open-files limit, as runc does for every
    container (refused in some sandboxes: "error setting rlimit type 7: operation not permitted")."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        return True  # cannot tell: assume an ordinary machine
    child = subprocess.Popen(["sleep", "5"])
    try:
        limit = f"--nofile={PODMAN_NOFILE}:{PODMAN_NOFILE}"
        done = subprocess.run([prlimit, f"--pid={child.pid}", limit], capture_output=True)
        return done.returncode == 0
    finally:
        child.kill()
        child.wait()


def _cgroup_v2_with_systemd() -> bool:
    return Path("/sys/fs/cgroup/cgroup.controllers").exists() and Path("/run/systemd/system").is_dir()


def podman_global_args() -> tuple[str, ...]:
    args: list[str] = []
    if not _cgroup_v2_with_systemd():
        args.append("--cgroup-manager=cgroupfs")
    if not _rlimits_settable():
        args += ["--runtime", str(RUNC_WRAPPER)]
    return tuple(args)


@functools.cache
def detect() -> Engine:
    """docker if a daemon answers, else podman (with this machine's flags); EngineUnavailable otherwise."""
    wanted = os.environ.get("MLCYCLE_CONTAINER_ENGINE")
    if wanted not in (None, "", "docker", "podman"):
        raise EngineUnavailable(f"MLCYCLE_CONTAINER_ENGINE={wanted!r}: use docker or podman")
    if wanted in (None, "", "docker") and shutil.which("docker"):
        if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0:
            return Engine("docker")
        if wanted == "docker":
            raise EngineUnavailable("MLCYCLE_CONTAINER_ENGINE=docker but no Docker daemon answers `docker info`")
    if shutil.which("podman"):
        engine = Engine("podman", podman_global_args())
        probe = engine.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
        if probe.returncode != 0:
            raise EngineUnavailable(f"podman is installed but `podman info` fails: {probe.stderr.strip()[-300:]}")
        return engine
    raise EngineUnavailable(
        "no container engine: no Docker daemon answers and podman is not installed "
        "(Debian: apt-get install podman buildah runc catatonit)"
    )
