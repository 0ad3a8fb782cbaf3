"""The mainApplicationFile of mlcycle's SparkApplications: the `mlcycle` CLI, unchanged.

spark-submit runs a Python application only from a file ending in `.py` (the `mlcycle` console script has no
suffix), so `mlcycle-step.py <step> --usecase U --partition D` is `mlcycle <step> ...` with the same exit code,
which spark-submit passes on as its own (docs/adr/0011-spark-steps-as-sparkapplications.md).
"""

import sys

from mlcycle.cli import entrypoint

sys.exit(entrypoint())
