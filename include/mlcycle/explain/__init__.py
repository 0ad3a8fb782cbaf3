"""Single-example debugging (`mlcycle explain`, docs/explain.md): one served prediction, from the row as it landed
to its score, reproduced from the registered version that served it.

It reuses `mlcycle lineage`'s walk from a prediction to its partitions and version. It loads the model (scikit-learn;
torch only for a torch version) and never Great Expectations or Evidently: the contract's per-row rules are
evaluated on the row directly (`mlcycle.explain.rowchecks`).
"""
