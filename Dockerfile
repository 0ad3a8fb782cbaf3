# syntax=docker/dockerfile:1.7
#
# The task image: every lifecycle step runs as `mlcycle <step> ...` from it (KubernetesPodOperator pods),
# and so do the chart's MLflow server, alert receiver, orphan-pod cleanup and `helm test` pod.
#
#   docker build -t ghcr.io/mlcycle/mlcycle-task:<tag> .                             # CPU (default)
#   docker build --build-arg VARIANT=cuda -t ghcr.io/mlcycle/mlcycle-task:<tag>-cuda .  # CUDA (torch on GPUs)
#   docker build --target airflow -t ghcr.io/mlcycle/mlcycle-airflow:<tag> .          # Airflow's own image
#
# `make image` / `make image-cuda` run these. Versions come from requirements.lock (the project's only lock):
# the image installs the project's runtime dependencies at exactly the locked versions, without the dev tools.
# Tags, and how the DAGs pick an image per environment: docs/deploy.md, "Images".

# Base images by digest: a tag moves under a rebuild, a digest does not (L7). PYTHON_IMAGE is the official
# multi-platform index of python:3.11-slim-bookworm, as published on Docker Hub (resolved 2026-10-01; refresh
# with `docker buildx imagetools inspect python:3.11-slim-bookworm` and paste the index digest after the @).
# AIRFLOW_IMAGE cannot be resolved from the machines that build this project, so it is a tag here: a release
# build passes the digest (`make image RELEASE=1 AIRFLOW_IMAGE=apache/airflow:<v>-python3.11@sha256:...`) and
# `make image` refuses a RELEASE=1 build from a base without one. Where no registry is reachable, `make image`
# builds on a local Debian bookworm + Python 3.11 base (`make base-image`), passed by its own digest.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# cpu: torch's CPU build (the locked +cpu wheel, from PyTorch's CPU index).
# cuda: PyPI's Linux build of the same torch version (CUDA 13), with its NVIDIA runtime wheels. Those wheels
#       are resolved at build time (the lock is resolved for CPU); the image digest pins them.
ARG VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# A folder of wheels mounted into the build (`podman build -v DIR:/wheels:ro`) that holds the locked torch +cpu
# wheel: where the CPU index is out of reach, torch comes from there (the lock's hash is checked either way).
ARG TORCH_FIND_LINKS=
ARG UV_VERSION=0.13.9
# pip and uv trust the system's CA bundle (not their own copies): a machine behind a TLS-inspecting proxy
# mounts its bundle there for the build (mlcycle_dev.containers.build does); nothing of it reaches the image.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uv from its own venv: `python3 -m venv` works on the official image and on a Debian one (whose system
# Python is "externally managed"); the builder stage is not shipped.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv && uv venv /opt/mlcycle
ENV VIRTUAL_ENV=/opt/mlcycle
WORKDIR /src

# Constraints = the lock, hashes included (uv verifies every hash it is given). The torch line carries the
# local version of the CPU build (torch==X+cpu \ and its hash); for CUDA its stanza is dropped from the
# constraints and torch X comes from PyPI.
COPY requirements.lock ./
RUN set -eu; \
    torch="$(sed -n 's/^torch==\([0-9][0-9.]*\)+cpu\( .*\)\{0,1\}$/\1/p' requirements.lock)"; \
    test -n "$torch" || { echo "requirements.lock: no torch==X+cpu line" >&2; exit 1; }; \
    awk '/^torch==/ {stanza = 1} stanza {print} stanza && !/\\$/ {exit}' requirements.lock > /tmp/torch.txt; \
    awk '/^torch==/ {skip = 1} !skip {print} skip && !/\\$/ {skip = 0}' requirements.lock \
      > /tmp/constraints-without-torch.txt; \
    if [ -n "$TORCH_FIND_LINKS" ]; then torch_source="--no-index --find-links $TORCH_FIND_LINKS"; \
    else torch_source="--index-url $TORCH_CPU_INDEX"; fi; \
    case "$VARIANT" in \
      cpu)  cp requirements.lock /tmp/constraints.txt; \
            uv pip install --no-deps --require-hashes $torch_source -r /tmp/torch.txt ;; \
      cuda) cp /tmp/constraints-without-torch.txt /tmp/constraints.txt; \
            uv pip install --constraint /tmp/constraints.txt "torch==${torch}" ;; \
      *)    echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1 ;; \
    esac

# The runtime dependencies at the locked versions (torch is already satisfied), then the project itself: a
# change to the code reinstalls only the project, not the stack (cached rebuilds). Only what the package build
# needs is copied, so a change to tests or docs invalidates nothing.
# mlflow[auth] (in the lock) brings the basic-auth app the chart's tracking server runs from this image.
COPY pyproject.toml ./
RUN uv pip install --constraint /tmp/constraints.txt -r pyproject.toml
COPY README.md ./
COPY include/mlcycle ./include/mlcycle
RUN uv pip install --no-deps --constraint /tmp/constraints.txt . \
    && uv pip check

# ---------------------------------------------------------------------------------------------------------
# Airflow's components (scheduler, dag-processor, api-server, triggerer, workers) for the official chart:
# the official image with the locked provider versions. The DAG files and mlcycle.orchestration come from the
# DAG bundle (git-sync), so the code that builds the pods always matches the DAG files.
FROM ${AIRFLOW_IMAGE} AS airflow
COPY --chown=airflow:0 requirements.lock /tmp/requirements.lock
# pip reads hashes in a constraints file as "require hashes for everything", which the official image's own
# packages cannot meet: its constraints are the lock's versions without the hashes (uv checks those in the task
# image).
RUN awk '/^torch==/ {skip = 1} !skip {print} skip && !/\\$/ {skip = 0}' /tmp/requirements.lock \
      | sed -e '/^ *--hash=/d' -e 's/ \\$//' > /tmp/constraints.txt \
    && pip install --no-cache-dir --constraint /tmp/constraints.txt \
       "apache-airflow==$(sed -n 's/^apache-airflow==//p' /tmp/constraints.txt)" \
       apache-airflow-providers-cncf-kubernetes pydantic pyyaml \
    && rm /tmp/requirements.lock /tmp/constraints.txt

# ---------------------------------------------------------------------------------------------------------
# The task image (the default target). Non-root, numeric user: kubelet can only enforce runAsNonRoot for a
# numeric USER, and the pods' securityContext (runAsUser 10001) names the same one.
FROM ${PYTHON_IMAGE} AS task
ARG VARIANT=cpu
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="mlcycle-task" \
      org.opencontainers.image.description="mlcycle lifecycle steps: mlcycle <step> --usecase U --partition D" \
      org.opencontainers.image.source="https://github.com/mlcycle/mlcycle" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      io.mlcycle.variant="${VARIANT}"
RUN groupadd --system --gid 10001 mlcycle \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/mlcycle --create-home \
       --shell /usr/sbin/nologin mlcycle
COPY --from=builder /opt/mlcycle /opt/mlcycle
# Use cases are configuration, read at run time (the package is installed, not the repository).
COPY include/usecases /opt/mlcycle/usecases
# Bytecode was compiled at build time (the root filesystem is read-only in the pods); MLCYCLE_CODE_VERSION
# is the commit the MLflow runs record.
ENV PATH=/opt/mlcycle/bin:$PATH \
    VIRTUAL_ENV=/opt/mlcycle \
    MLCYCLE_USECASES_DIR=/opt/mlcycle/usecases \
    MLCYCLE_CODE_VERSION=${GIT_SHA} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/mlcycle
ENTRYPOINT ["mlcycle"]
CMD ["--help"]
