"""Lineage you can ask questions of: from a prediction, a partition or a model version, backward to the data,
the contract results, the training run, the gate decision, the approver and the DAG runs, and forward to every
model and prediction partition that used a partition (`mlcycle lineage`, docs/lineage.md).

It reads only what the steps write (partition manifests, the registry's version tags, MLflow runs) and never
guesses: a link that is not recorded is reported as unknown, with the reason. Light on purpose: MLflow and
pyarrow, never Great Expectations, Evidently or torch.
"""
