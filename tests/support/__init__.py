"""Test support shared across tests/ (importable as `support`: pytest's `pythonpath` names tests/).

- `support.cli`: drive the `mlcycle` CLI in-process and read its JSON result;
- `support.usecases`: use-case folders edited for a test (structured YAML edits);
- `support.kube_checks`, `support.step_pods`, `support.helm_release`: the offline Kubernetes checks, the
  pods the DAGs build, and the chart rendered by Helm's engine (tests/k8s, tests/helm);
- `support.fixtures`: the pytest plugin (tests/conftest.py loads it) with the fixtures those folders share.
"""
