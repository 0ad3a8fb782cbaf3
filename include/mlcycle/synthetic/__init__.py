"""Synthetic YarnIt data (`mlcycle generate`).

Part of the runtime package, not of the dev tooling (`dev/mlcycle_dev`): the pod smoke tests run
`mlcycle generate` from the task image to have landing data to ingest, and the demo uses the same command.
"""
