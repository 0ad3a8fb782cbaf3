"""The Spark engine (`engine: spark`): the bodies of validate, score and the drift statistics on Apache Spark.

Each step dispatches here in one place (a branch on `usecase.engine` in its body); argv, exit codes, the JSON
result and the manifests stay those of the local engine, with `engine` added. Nothing here is imported on a
local-engine path: pyspark (and its JVM) load only when a Spark step runs (tests/unit/test_layers.py checks it).
"""
