"""tests/helm: the chart rendered by Helm's own engine (helm-python-sdk), linted, and validated offline.

The rendering helper is `support.helm_release`; the pods the DAGs build (`step_pods`) come from the
`support.fixtures` plugin, shared with tests/k8s.
"""

from __future__ import annotations

import pytest

from support.helm_release import VALUE_SETS, Rendered, render


@pytest.fixture(scope="session")
def default_release() -> Rendered:
    return render("default")


@pytest.fixture(scope="session", params=VALUE_SETS)
def release(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with each values set of helm/mlcycle/ci (and the defaults)."""
    return render(request.param)
