#!/bin/bash
# The entrypoint of the Spark build of the task image (Dockerfile, target task-spark).
#
# Spark's Kubernetes backend creates the driver and executor pods of a SparkApplication with container arguments
# only (`driver ...`, `executor`) and the settings in the environment: this script turns them into the driver's
# spark-submit (client mode: the operator's submit already placed the driver in its own pod) and the executor's
# JVM. Any other arguments are an mlcycle command, as in the other builds of the image.
set -euo pipefail

: "${SPARK_HOME:?SPARK_HOME is not set: this is not the Spark build of the task image}"

case "${1:-}" in
  driver)
    shift
    exec "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?set by Spark in the driver pod}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client \
      "$@"
    ;;
  executor)
    shift
    # The driver passes the executor's JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
    java_options=()
    for name in $(compgen -v SPARK_JAVA_OPT_ || true); do
      java_options+=("${!name}")
    done
    exec java "${java_options[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" \
      --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec mlcycle "$@"
    ;;
esac
