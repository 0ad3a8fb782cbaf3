"""The task image, built once per test session with this machine's engine (docker or podman), and the engine.

Where no engine can run a container (no podman, no Docker daemon, a runtime that cannot start), every test
here skips and says why. `make image` and these tests share the build cache: after `make image`, the build
here takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mlcycle_dev.containers.base_image import BaseImageError, make_sidecar
from mlcycle_dev.containers.build import BuildRefused, build_images, built_from_these_inputs
from mlcycle_dev.containers.runtime import Engine, EngineUnavailable, detect

TEST_REPO = "localhost/mlcycle"


@dataclass(frozen=True)
class Images:
    task: str
    sidecar: str


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return detect()
    except EngineUnavailable as exc:
        pytest.skip(f"no container runtime here: {exc}")


@pytest.fixture(scope="session")
def images(engine: Engine) -> Iterator[Images]:
    if engine.name != "podman":
        pytest.skip("the pods run through `podman kube play`; this machine's engine is docker")
    # `make image` and earlier sessions label the image with the digest of what the build reads: with the same
    # inputs it is reused (a podman rebuild that hits every cached layer still re-hashes gigabytes).
    try:
        task = built_from_these_inputs(engine) or build_images(engine, repo=TEST_REPO, tag="test", airflow=False)[0].ref
        sidecar = make_sidecar(engine)
    except (BuildRefused, BaseImageError) as exc:
        pytest.skip(f"the task image cannot be built here: {exc}")
    probe = engine.run("run", "--rm", "--user", "10001", task, "--help", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot start a container here: {probe.stderr.strip()[-300:]}")
    yield Images(task, sidecar)
