"""Local stand-ins for the official base images, for machines that reach Debian's mirror but no registry.

- `python`: Debian bookworm (`debootstrap --variant=minbase`) with Python 3.11 and its venv module, the
  same Python minor and Debian release as `python:3.11-slim-bookworm`, imported with `podman import`;
- `sidecar`: busybox (Debian's static build) alone, for KPO's xcom sidecar (it only runs `sh`, `sleep`, `cat`).

    python -m mlcycle_dev.containers.base_image [python|sidecar]   # prints the image reference

Both are made once: an existing image of the same name is reused.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlcycle_dev.containers.runtime import Engine, detect

PYTHON_BASE = "localhost/mlcycle-python:3.11-bookworm"
SIDECAR = "localhost/mlcycle-xcom-sidecar:busybox"
SUITE = "bookworm"
#: What python:3.11-slim-bookworm has that a minbase root lacks (CA certificates for TLS, time zones).
PYTHON_PACKAGES = ("python3.11", "python3.11-venv", "python3-distutils", "ca-certificates", "tzdata", "netbase")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class BaseImageError(RuntimeError):
    """A base image could not be made (the message names the step)."""


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"), *Path("/etc/apt").glob("sources.list*")]
    for path in sources:
        if path.is_file():
            match = re.search(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)/?\s*$", path.read_text(), re.M)
            if match:
                return match[1]
    return DEFAULT_MIRROR


def _run(step: str, argv: list[str], **kwargs: object) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise BaseImageError(f"{step} failed ({' '.join(argv[:3])} ...): {done.stderr.strip()[-800:]}")


def _import(engine: Engine, rootfs: Path, ref: str, changes: list[str]) -> None:
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    flags = [arg for change in changes for arg in ("--change", change)]
    done = subprocess.run(engine.argv("import", *flags, "-", ref), stdin=tar.stdout, capture_output=True, text=True)
    tar.wait()
    if done.returncode != 0 or tar.returncode != 0:
        raise BaseImageError(f"podman import {ref} failed: {done.stderr.strip()[-800:]}")


def make_python_base(engine: Engine, ref: str = PYTHON_BASE) -> str:
    if engine.image_exists(ref):
        return ref
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise BaseImageError(f"making {ref} needs root and debootstrap (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="mlcycle-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run("debootstrap", ["debootstrap", "--variant=minbase", SUITE, str(rootfs), apt_mirror()])
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run("apt-get update (chroot)", ["chroot", str(rootfs), "apt-get", "update", "-qq"], env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PYTHON_PACKAGES]
        _run("apt-get install python (chroot)", ["chroot", str(rootfs), *install], env=env)
        _run("apt-get clean (chroot)", ["chroot", str(rootfs), "apt-get", "clean"])
        for cache in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
            (rootfs / cache).mkdir(parents=True, exist_ok=True)
        # The official image's `python3` is 3.11 too; `python` is not in Debian's package.
        (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3.11")
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8"]
        _import(engine, rootfs, ref, [*changes, 'CMD ["python3"]'])
    return ref


def make_sidecar(engine: Engine, ref: str = SIDECAR) -> str:
    if engine.image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="mlcycle-sidecar-") as tmp:
        _run("apt-get download busybox-static", ["apt-get", "download", "busybox-static"], cwd=tmp)
        (deb,) = Path(tmp).glob("busybox-static_*.deb")
        extracted = Path(tmp) / "deb"
        _run("dpkg-deb -x", ["dpkg-deb", "-x", str(deb), str(extracted)])
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(extracted / "bin" / "busybox", rootfs / "bin" / "busybox")
        for applet in ("sh", "sleep", "cat", "kill", "ls"):
            (rootfs / "bin" / applet).symlink_to("busybox")
        for folder in ("tmp", "proc", "sys", "dev", "etc"):
            (rootfs / folder).mkdir()
        _import(engine, rootfs, ref, ["ENV PATH=/bin", 'CMD ["sh"]'])
    return ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", choices=("python", "sidecar"), default="python")
    args = parser.parse_args(argv)
    engine = detect()
    if engine.name != "podman":
        print("base images are made with podman; with docker, pull the official ones", file=sys.stderr)
        return 2
    try:
        print(make_python_base(engine) if args.which == "python" else make_sidecar(engine))
    except BaseImageError as exc:
        print(f"base-image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
