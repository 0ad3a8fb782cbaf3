"""`make image`: build the task image (and Airflow's) with docker or podman, whichever this machine has.

- Two images from one Dockerfile (docs/adr/0009-two-environments.md): the task image (`--target task`, from
  requirements-task.lock: the steps, no Airflow) and Airflow's (`--target airflow`, from
  requirements-airflow.lock: Airflow and its providers, no ML library), both on the same Python base. The task
  image's variants: `cuda` (torch for GPUs) and `spark` (`--target task-spark`: + Java 17 and Spark's entrypoint,
  for the SparkApplications of `engine: spark` use cases).
- The base is the Dockerfile's default PYTHON_IMAGE (the official image, pinned by digest) or PYTHON_IMAGE from
  the environment. When it cannot be pulled and the engine is podman, the local Debian bookworm + Python 3.11
  base (`make base-image`) is built and passed by its own digest.
- The locked torch +cpu wheel: when pip's `find-links` folder holds it (machines without PyTorch's index),
  podman mounts that folder into the build (`-v DIR:/wheels:ro`); the lock's hash is checked either way.
- `--release` refuses a base that is not pinned by digest, and a local stand-in base.

Prints each image's build time and size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle_dev.containers.base_image import BaseImageError, make_python_base
from mlcycle_dev.containers.runtime import Engine, EngineUnavailable, detect
from mlcycle_dev.locks import TASK, pip_find_links

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
DEFAULT_REPO = "ghcr.io/mlcycle/mlcycle"
BASE_ARGS = ("PYTHON_IMAGE",)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
WHEELS_IN_BUILD = "/wheels"
INPUTS_REPO = "localhost/mlcycle-built"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


#: The Dockerfile target of each variant of the task image.
TASK_TARGETS = {"cpu": "task", "cuda": "task", "spark": "task-spark"}

#: `make image`'s exit status when this machine cannot build at all (no engine, no way to make a base): CI
#: goes on and the container tests skip; any other failure is the project's and fails CI.
CANNOT_BUILD_HERE = 3


class BuildRefused(RuntimeError):
    """The build would not be what was asked for, or its base is out of reach (the message says why)."""


class BuildFailed(RuntimeError):
    """The engine's build itself failed (a defect of the Dockerfile or the lock: the log above says which)."""


@dataclass(frozen=True)
class Built:
    ref: str
    seconds: float
    size_bytes: int


def dockerfile_defaults(text: str | None = None) -> dict[str, str]:
    """The Dockerfile's global ARG defaults (before the first FROM)."""
    text = DOCKERFILE.read_text() if text is None else text
    head = text.split("\nFROM ", 1)[0]
    return dict(re.findall(r"^ARG\s+([A-Z_]+)=(\S+)\s*$", head, re.M))


def base_images(environ: dict[str, str] | None = None) -> dict[str, str]:
    """PYTHON_IMAGE (the base of both images): the environment's, else the Dockerfile's default."""
    environ = dict(os.environ) if environ is None else environ
    defaults = dockerfile_defaults()
    return {name: environ.get(name) or defaults[name] for name in BASE_ARGS}


def unpinned(bases: dict[str, str]) -> list[str]:
    return [f"{name}={ref}" for name, ref in bases.items() if not _DIGEST.search(ref)]


def refuse_unpinned(bases: dict[str, str]) -> None:
    if unpinned(bases):
        raise BuildRefused(
            f"RELEASE=1 builds only on bases pinned by digest; unpinned: {', '.join(unpinned(bases))} "
            "(pass NAME=image@sha256:<digest>, from `docker buildx imagetools inspect <image>`)"
        )


def torch_wheel_folder() -> Path | None:
    """pip's find-links folder when it holds the locked torch +cpu wheel (see the Makefile's FIND_LINKS)."""
    version = re.search(r"^torch==(\S+\+cpu)", (REPO / TASK.file).read_text(), re.M)
    folder = pip_find_links()
    if folder and version and any(Path(folder).glob(f"torch-{version[1]}-*.whl")):
        return Path(folder)
    return None


def resolve_python_base(engine: Engine, ref: str, *, release: bool) -> str:
    """`ref` when the engine has it or can pull it; else (podman, not a release) the local base by digest."""
    if engine.image_exists(ref) or engine.run("pull", ref, check=False, timeout=600).returncode == 0:
        return ref
    if release:
        raise BuildRefused(f"the base image {ref} cannot be pulled (a release builds on the official base)")
    if engine.name != "podman":
        raise BaseImageError(f"the base image {ref} cannot be pulled, and only podman makes a local one")
    local = make_python_base(engine)
    digest = engine.image_digest(local)
    print(f"{ref} cannot be pulled here: building on the local base {local}@{digest} (make base-image)")
    return f"{local}@{digest}"


def build(engine: Engine, ref: str, build_args: dict[str, str], extra: list[str]) -> Built:
    flags = [arg for name, value in build_args.items() for arg in ("--build-arg", f"{name}={value}")]
    if engine.name == "podman":
        flags += ["--network", "host"]  # the package registries are reached through the host's network
        if HOST_CA_BUNDLE.is_file():
            # The host's trust (a TLS-inspecting proxy's CA included) for the build's downloads only.
            flags += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    # A second tag names the inputs' digest: `make image` and the container tests find each other's image by it
    # (a label would be part of every layer's cache key).
    tags = ["-t", ref, "-t", inputs_tag(ref)]
    start = time.monotonic()
    done = subprocess.run(engine.argv("build", *flags, *extra, *tags, str(REPO)), check=False)
    if done.returncode != 0:
        raise BuildFailed(f"{engine.name} build of {ref} failed (exit {done.returncode}): see the build log above")
    return Built(ref, time.monotonic() - start, engine.image_size(ref))


#: What the build reads (the Dockerfile and the .dockerignore allowlist): a change to anything else cannot
#: change the image.
BUILD_INPUTS = (
    "Dockerfile",
    "requirements-task.lock",
    "requirements-airflow.lock",
    "pyproject.toml",
    "README.md",
    "include",
    "docker",
)


def inputs_digest() -> str:
    """sha256 over the build's inputs as a clean checkout has them (12 hex digits)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *BUILD_INPUTS],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    digest = hashlib.sha256()
    for name in sorted(n for n in listed if "__pycache__" not in n and ".egg-info/" not in n):
        path = REPO / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def inputs_tag(ref: str) -> str:
    """The local tag of an image built from the current inputs (`task`, `task-cuda`, `task-spark` or `airflow`)."""
    name, _, tag = ref.rpartition(":")
    variant = next((v for v in TASK_TARGETS if v != "cpu" and tag.endswith(f"-{v}")), None)
    flavour = "airflow" if name.endswith("-airflow") else f"task-{variant}" if variant else "task"
    return f"{INPUTS_REPO}:{flavour}-inputs-{inputs_digest()}"


def built_from_these_inputs(engine: Engine, flavour: str = "task") -> str | None:
    """The image (`task` or `airflow`) already built from exactly the current inputs, if the engine has one."""
    ref = f"{INPUTS_REPO}:{flavour}-inputs-{inputs_digest()}"
    return ref if engine.image_exists(ref) else None


def git_sha(short: bool = False) -> str:
    argv = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


#: `make image-spark SPARK_S3A=1`: the Spark build with Hadoop's S3A connector (docker/spark-jars/README.md).
SPARK_S3A_ENV = "SPARK_S3A"


def spark_s3a(release: bool) -> str:
    """The Spark build's SPARK_S3A argument: 1 (S3A jars required) or 0; a release must read S3."""
    value = os.environ.get(SPARK_S3A_ENV, "0")
    if value not in ("0", "1"):
        raise BuildRefused(f"{SPARK_S3A_ENV}={value!r}: expected 0 or 1")
    if release and value != "1":
        raise BuildRefused(
            f"a release Spark image must read s3:// storage roots: set {SPARK_S3A_ENV}=1 with the S3A jars in "
            "docker/spark-jars/ (see its README.md)"
        )
    if value == "0":
        print(
            "make image-spark: without S3A (SPARK_S3A=0): this image reads local storage roots only; a Spark step "
            "given an s3:// root fails naming the missing connector (docker/spark-jars/README.md)",
            file=sys.stderr,
        )
    return value


def build_images(
    engine: Engine,
    *,
    repo: str,
    tag: str,
    variant: str = "cpu",
    release: bool = False,
    airflow: bool = True,
    task: bool = True,
) -> list[Built]:
    bases = base_images()
    if release:
        refuse_unpinned(bases)
    python_base = resolve_python_base(engine, bases["PYTHON_IMAGE"], release=release)
    # The Spark build is the CPU build plus the task-spark stage (Dockerfile): the same VARIANT keeps every layer
    # of `make image` shared, so only Java, Spark's entrypoint and the optional S3A jars are built for it.
    args = {"VARIANT": "cpu" if variant == "spark" else variant, "GIT_SHA": git_sha(), "PYTHON_IMAGE": python_base}
    if variant == "spark":
        args["SPARK_S3A"] = spark_s3a(release)
    extra: list[str] = []
    wheels = torch_wheel_folder() if variant in ("cpu", "spark") else None
    if wheels and engine.name == "podman":
        extra = ["--volume", f"{wheels}:{WHEELS_IN_BUILD}:ro"]
        args["TORCH_FIND_LINKS"] = WHEELS_IN_BUILD
    suffix = "" if variant == "cpu" else f"-{variant}"
    target = ["--target", TASK_TARGETS[variant]]
    built = [build(engine, f"{repo}-task:{tag}{suffix}", args, [*extra, *target])] if task else []
    if airflow and variant == "cpu":
        airflow_args = {"GIT_SHA": args["GIT_SHA"], "PYTHON_IMAGE": python_base}
        built.append(build(engine, f"{repo}-airflow:{tag}", airflow_args, ["--target", "airflow"]))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=os.environ.get("IMAGE_REPO") or DEFAULT_REPO)
    parser.add_argument("--tag", default=os.environ.get("IMAGE_TAG") or None)
    parser.add_argument("--variant", choices=tuple(TASK_TARGETS), default="cpu")
    parser.add_argument("--release", action="store_true", default=os.environ.get("RELEASE") == "1")
    parser.add_argument("--no-airflow", dest="airflow", action="store_false")
    args = parser.parse_args(argv)
    try:
        if args.release:  # refused before any engine is asked
            refuse_unpinned(base_images())
        engine = detect()
        tag = args.tag or git_sha(short=True)
        built = build_images(
            engine, repo=args.repo, tag=tag, variant=args.variant, release=args.release, airflow=args.airflow
        )
    except (EngineUnavailable, BaseImageError) as exc:
        print(f"make image: cannot build on this machine: {exc}", file=sys.stderr)
        return CANNOT_BUILD_HERE
    except (BuildRefused, BuildFailed) as exc:
        print(f"make image: {exc}", file=sys.stderr)
        return 1
    for image in built:
        print(f"built {image.ref} with {engine.name} in {image.seconds:.0f} s; size {image.size_bytes / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
