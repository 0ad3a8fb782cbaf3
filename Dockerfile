# syntax=docker/dockerfile:1.7
#
# The task image: every lifecycle step runs as `mlcycle <step> ...` from it (KubernetesPodOperator pods),
# and so do the chart's MLflow server, alert receiver, orphan-pod cleanup and `helm test` pod.
#
#   docker build -t ghcr.io/mlcycle/mlcycle-task:<tag> .                             # CPU (default)
#   docker build --build-arg VARIANT=cuda -t ghcr.io/mlcycle/mlcycle-task:<tag>-cuda .  # CUDA (torch on GPUs)
#   docker build --target airflow -t ghcr.io/mlcycle/mlcycle-airflow:<tag> .          # Airflow's own image
#   docker build --target task-spark -t ghcr.io/mlcycle/mlcycle-task:<tag>-spark .    # Spark steps (SparkApplications):
#                                         # the CPU image + Java 17, Spark's entrypoint (+ S3A: --build-arg SPARK_S3A=1)
#
# `make image` / `make image-cuda` / `make image-spark` run these. Two environments (docs/adr/0009-two-environments.md), each from
# its own lock, hashes included: the task image from requirements-task.lock (the steps' stack, no Airflow), the
# Airflow image from requirements-airflow.lock (Airflow and its providers, no ML library). Both install the
# mlcycle package itself without resolving anything. Tags, and how the DAGs pick an image: docs/deploy.md, "Images".
#
# Layer order, for warm rebuilds: uv, then the locked stack (it changes with a lock), then the project (it changes
# with every commit). torch's install reads only torch's lines of the lock: bumping another package keeps it.

# The base image by digest: a tag moves under a rebuild, a digest does not (L7). PYTHON_IMAGE is the official
# multi-platform index of python:3.11-slim-bookworm, as published on Docker Hub (resolved 2026-10-01; refresh
# with `docker buildx imagetools inspect python:3.11-slim-bookworm` and paste the index digest after the @).
# Both images build on it. Where no registry is reachable, `make image` builds on a local Debian bookworm +
# Python 3.11 base (`make base-image`), passed by its own digest.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---------------------------------------------------------------------------------------------------------
# uv, for both builders (neither builder stage is shipped).
FROM ${PYTHON_IMAGE} AS uv
ARG UV_VERSION=0.13.9
# pip and uv trust the system's CA bundle (not their own copies): a machine behind a TLS-inspecting proxy
# mounts its bundle there for the build (mlcycle_dev.containers.build does); nothing of it reaches the images.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uv from its own venv: `python3 -m venv` works on the official image and on a Debian one (whose system
# Python is "externally managed").
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv
WORKDIR /src

# ---------------------------------------------------------------------------------------------------------
# The task lock cut in two: torch's stanza (its `torch==X+cpu \` line and hashes) and everything else. Copied
# from here file by file, each cut is its own cache key: a lock bump that leaves torch alone keeps its layer.
FROM uv AS task-lock
COPY requirements-task.lock ./
RUN set -eu; \
    torch="$(sed -n 's/^torch==\([0-9][0-9.]*\)+cpu\( .*\)\{0,1\}$/\1/p' requirements-task.lock)"; \
    test -n "$torch" || { echo "requirements-task.lock: no torch==X+cpu line" >&2; exit 1; }; \
    mkdir /lock; echo "$torch" > /lock/torch-version; \
    awk '/^torch==/ {stanza = 1} stanza {print} stanza && !/\\$/ {exit}' requirements-task.lock > /lock/torch.txt; \
    awk '/^torch==/ {skip = 1} !skip {print} skip && !/\\$/ {skip = 0}' requirements-task.lock > /lock/rest.txt

# ---------------------------------------------------------------------------------------------------------
FROM uv AS builder
RUN uv venv /opt/mlcycle
ENV VIRTUAL_ENV=/opt/mlcycle
# cpu: torch's CPU build (the locked +cpu wheel, from PyTorch's CPU index); the Spark build is this one (VARIANT=cpu).
# cuda: PyPI's Linux build of the same torch version (CUDA 13), with its NVIDIA runtime wheels. Those wheels
#       are resolved at build time (the lock is resolved for CPU); the image digest pins them. torch's other
#       dependencies are then set to the lock's versions and hashes by the next layer.
ARG VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# A folder of wheels mounted into the build (`podman build -v DIR:/wheels:ro`) that holds the locked torch +cpu
# wheel: where the CPU index is out of reach, torch comes from there (the lock's hash is checked either way).
ARG TORCH_FIND_LINKS=
COPY --from=task-lock /lock/torch-version /lock/torch.txt /tmp/
RUN set -eu; \
    if [ -n "$TORCH_FIND_LINKS" ]; then torch_source="--no-index --find-links $TORCH_FIND_LINKS"; \
    else torch_source="--index-url $TORCH_CPU_INDEX"; fi; \
    case "$VARIANT" in \
      cpu|spark) uv pip install --no-deps --require-hashes $torch_source -r /tmp/torch.txt ;; \
      cuda) uv pip install "torch==$(cat /tmp/torch-version)" ;; \
      *)    echo "VARIANT must be cpu, cuda or spark, not $VARIANT" >&2; exit 1 ;; \
    esac
# The rest of the step stack at exactly the locked versions and hashes (nothing is resolved here).
# mlflow[auth] (in the lock) brings the basic-auth app the chart's tracking server runs from this image.
COPY --from=task-lock /lock/rest.txt /tmp/
RUN uv pip install --no-deps --require-hashes -r /tmp/rest.txt

# ---------------------------------------------------------------------------------------------------------
# The project on top of a stack, as its own few files: installed with the stack's venv layout under /out (its
# package, dist-info and `mlcycle` script, whose shebang names the venv's python), then checked merged into the
# stack. The shipped images copy the stack (gigabytes, cached while the lock stands) and /out (under a megabyte,
# every commit) as separate layers. Only what the package build needs is copied, so a change to tests or docs
# invalidates nothing.
FROM builder AS project
COPY pyproject.toml README.md ./
COPY include/mlcycle ./include/mlcycle
RUN uv pip install --no-deps --prefix /out . && rm /out/.lock && cp -a /out/. "$VIRTUAL_ENV"/ && uv pip check

# ---------------------------------------------------------------------------------------------------------
FROM uv AS airflow-builder
RUN uv venv /opt/airflow-env
ENV VIRTUAL_ENV=/opt/airflow-env
COPY requirements-airflow.lock ./
RUN uv pip install --no-deps --require-hashes -r requirements-airflow.lock

FROM airflow-builder AS airflow-project
COPY pyproject.toml README.md ./
COPY include/mlcycle ./include/mlcycle
RUN uv pip install --no-deps --prefix /out . && rm /out/.lock && cp -a /out/. "$VIRTUAL_ENV"/ && uv pip check

# ---------------------------------------------------------------------------------------------------------
# Airflow's components (scheduler, dag-processor, api-server, triggerer, Celery workers) for the official chart
# (helm/airflow-values.yaml). Airflow, the cncf-kubernetes, standard, postgres, celery and amazon providers and
# the mlcycle package at the versions and hashes of requirements-airflow.lock; no ML library (the DAG files
# never need one: tests/dags/test_airflow_environment.py parses them in this lock's environment). The chart's
# defaults hold: uid 50000, gid 0, AIRFLOW_HOME=/opt/airflow, and its containers' `args` (`bash -c "exec
# airflow scheduler"`) run as the command, as there is no entrypoint. The DAG files, the plugins and the
# mlcycle package of the same commit come from the DAG bundle (git-sync, PYTHONPATH first): the installed
# package is the fallback that makes the image usable alone (`airflow dags list` on a baked-in folder).
FROM ${PYTHON_IMAGE} AS airflow
RUN useradd --system --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins \
    && chown -R 50000:0 /opt/airflow && chmod -R g+rwX /opt/airflow
COPY --from=airflow-builder /opt/airflow-env /opt/airflow-env
COPY --from=airflow-project /out/ /opt/airflow-env/
ENV PATH=/opt/airflow-env/bin:$PATH \
    VIRTUAL_ENV=/opt/airflow-env \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_USER_HOME_DIR=/home/airflow \
    PYTHONUNBUFFERED=1
# What differs with every commit comes last: a few bytes (the revision file) and metadata. The RUN is keyed on
# the build arguments in every engine; without it, buildah reuses an earlier commit's LABEL and ENV (it keys
# those on their parent layer and text only, not on the arguments' values).
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
RUN printf '%s\n' "${GIT_SHA}" > /opt/airflow-env/REVISION
LABEL org.opencontainers.image.title="mlcycle-airflow" \
      org.opencontainers.image.description="Airflow for mlcycle: launches each lifecycle step as a pod of mlcycle-task" \
      org.opencontainers.image.source="https://github.com/mlcycle/mlcycle" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}"
ENV MLCYCLE_CODE_VERSION=${GIT_SHA}
USER 50000:0
WORKDIR /opt/airflow
CMD ["airflow", "version"]

# ---------------------------------------------------------------------------------------------------------
# What every build of the task image ships (the `task` and `task-spark` targets below). Non-root, numeric user:
# kubelet can only enforce runAsNonRoot for a numeric USER, and the pods' securityContext (runAsUser 10001)
# names the same one.
FROM ${PYTHON_IMAGE} AS task-runtime
RUN groupadd --system --gid 10001 mlcycle \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/mlcycle --create-home \
       --shell /usr/sbin/nologin mlcycle
ARG VARIANT=cpu
COPY --from=builder /opt/mlcycle /opt/mlcycle
COPY --from=project /out/ /opt/mlcycle/
# Use cases are configuration, read at run time (the package is installed, not the repository).
COPY include/usecases /opt/mlcycle/usecases
# Bytecode was compiled at build time (the root filesystem is read-only in the pods).
ENV PATH=/opt/mlcycle/bin:$PATH \
    VIRTUAL_ENV=/opt/mlcycle \
    MLCYCLE_USECASES_DIR=/opt/mlcycle/usecases \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# What differs with every commit comes last: a few bytes and metadata (see the Airflow stage for the RUN);
# MLCYCLE_CODE_VERSION is the commit the MLflow runs record.
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
RUN printf '%s\n' "${GIT_SHA}" > /opt/mlcycle/REVISION
LABEL org.opencontainers.image.title="mlcycle-task" \
      org.opencontainers.image.description="mlcycle lifecycle steps: mlcycle <step> --usecase U --partition D" \
      org.opencontainers.image.source="https://github.com/mlcycle/mlcycle" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      io.mlcycle.variant="${VARIANT}"
ENV MLCYCLE_CODE_VERSION=${GIT_SHA}
USER 10001:10001
WORKDIR /home/mlcycle

# ---------------------------------------------------------------------------------------------------------
# The Spark build (`--target task-spark`, `make image-spark`): the image of the SparkApplications of `engine: spark`
# use cases (docs/adr/0011-spark-steps-as-sparkapplications.md). It is the CPU task image (VARIANT=cpu: the same
# locked stack, torch's CPU build included) plus the layers below, so it shares every layer of `make image` (a
# node that pulled one pulls a few hundred MB for the other). Spark's Kubernetes backend starts its pods with the
# arguments `driver ...` or `executor ...` and no command: the entrypoint runs spark-submit (client mode, in the
# driver pod) or the executor backend, and anything else as `mlcycle`. SPARK_HOME is pyspark's package folder
# (bin/, jars/); PYSPARK_PYTHON the venv's Python; the applications' mainApplicationFile is mlcycle-step.py (the
# CLI: spark-submit wants a .py file).
#
# S3 (a storage root s3://...): Spark reads it through Hadoop's S3A connector, which pyspark does not ship:
# hadoop-aws at the version of pyspark's Hadoop (jars/hadoop-client-api-<version>.jar) and the AWS SDK v2 bundle
# that hadoop-aws release names. Nothing is downloaded here (builds may have no Maven): put both jars in
# docker/spark-jars/ and build with SPARK_S3A=1 (`make image-spark SPARK_S3A=1`; RELEASE=1 requires it); the build
# then refuses a missing jar or a hadoop-aws of another Hadoop version. Without them the image says so in its
# label io.mlcycle.s3a=0, and a Spark step given an s3:// root fails naming the missing classes.
FROM task-runtime AS task-spark
USER root
# Spark's JVM: Debian's Java 17 runtime (pyspark itself, with Spark's jars, is in the lock).
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
ENV SPARK_HOME=/opt/mlcycle/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/mlcycle/bin/python
ARG SPARK_S3A=0
COPY docker/spark-jars/ /tmp/spark-jars/
RUN set -eu; \
    hadoop="$(ls "$SPARK_HOME"/jars/hadoop-client-api-*.jar | sed 's/.*hadoop-client-api-\(.*\)\.jar/\1/')"; \
    if [ "$SPARK_S3A" = 1 ]; then \
      test -f "/tmp/spark-jars/hadoop-aws-$hadoop.jar" \
        || { echo "SPARK_S3A=1: docker/spark-jars/ needs hadoop-aws-$hadoop.jar (pyspark's Hadoop is $hadoop)" >&2; exit 1; }; \
      ls /tmp/spark-jars/bundle-2.*.jar >/dev/null 2>&1 \
        || { echo "SPARK_S3A=1: docker/spark-jars/ needs the AWS SDK v2 bundle (bundle-2.*.jar) hadoop-aws-$hadoop names" >&2; exit 1; }; \
      cp "/tmp/spark-jars/hadoop-aws-$hadoop.jar" /tmp/spark-jars/bundle-2.*.jar "$SPARK_HOME/jars/"; \
    elif [ "$SPARK_S3A" != 0 ]; then echo "SPARK_S3A must be 0 or 1, not $SPARK_S3A" >&2; exit 1; fi; \
    rm -rf /tmp/spark-jars
COPY docker/spark-entrypoint.sh /opt/mlcycle/bin/spark-entrypoint
COPY docker/mlcycle-step.py /opt/mlcycle/bin/mlcycle-step.py
RUN java -version \
    && test -x "$SPARK_HOME/bin/spark-submit" \
    && ls "$SPARK_HOME"/jars/spark-kubernetes_*.jar \
    || { echo "task-spark needs Java and pyspark (requirements-task.lock)" >&2; exit 1; }
LABEL io.mlcycle.variant="spark" \
      io.mlcycle.s3a="${SPARK_S3A}"
USER 10001:10001
ENTRYPOINT ["/opt/mlcycle/bin/spark-entrypoint"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------------
# The task image (the default target: the last stage).
FROM task-runtime AS task
ENTRYPOINT ["mlcycle"]
CMD ["--help"]
