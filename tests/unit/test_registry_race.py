"""Two promotions racing for @champion: exactly one wins (the registry lock makes check-and-set atomic)."""

from __future__ import annotations

import contextlib
import threading
import time
import types
from pathlib import Path

import pytest

from mlcycle.config import get_usecase
from mlcycle.registry import champion, lock, tracking
from mlcycle.settings import embedded_environment
from mlcycle.storage.partitions import Storage
from support.registry_backends import BACKENDS, USECASE, lease_backend


@pytest.fixture
def two_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow
    import numpy as np
    from sklearn.dummy import DummyClassifier

    for key, value in embedded_environment(tmp_path).items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    usecase = get_usecase("yarnit")
    experiment = mlflow.create_experiment("race", artifact_location=str(tmp_path / "artifacts"))
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment):
            model = DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        mlflow.register_model(info.model_uri, usecase.registered_model_name)
    yield usecase, Storage(str(tmp_path / "data"))
    mlflow.set_tracking_uri(None)


def _race(usecase, storage) -> list[str]:
    """Both promotions expect "no champion"; each pauses between its check and its set."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(version: str) -> None:
        barrier.wait()
        try:
            champion.compare_and_set(storage, usecase, version, None, {"mlcycle.promoted_by": "test"})
            outcomes.append(f"won:{version}")
        except champion.ChampionChanged:
            outcomes.append(f"lost:{version}")

    threads = [threading.Thread(target=attempt, args=(v,)) for v in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_exactly_one_of_two_racing_promotions_wins(two_versions, monkeypatch: pytest.MonkeyPatch) -> None:
    usecase, storage = two_versions
    real = champion.current_champion

    def slow_check(u):  # widen the window between check and set, as a slow network would
        seen = real(u)
        time.sleep(0.5)
        return seen

    monkeypatch.setattr(champion, "current_champion", slow_check)
    outcomes = _race(usecase, storage)
    assert sum(o.startswith("won") for o in outcomes) == 1, outcomes
    assert sum(o.startswith("lost") for o in outcomes) == 1, outcomes
    winner = next(o.split(":")[1] for o in outcomes if o.startswith("won"))
    assert champion.current_champion(usecase) == winner
    assert not (Path(storage.root) / "yarnit" / "registry" / "champion.lock").exists(), "lock released"


def test_without_the_lock_both_would_win(two_versions, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race above is real: with the lock removed, both promotions pass their check."""
    usecase, storage = two_versions
    real = champion.current_champion
    both_checked = threading.Barrier(2)
    seen_by_checks: list[str | None] = []

    def racing_check(u):  # both promotions read the champion before either moves it
        seen = real(u)
        seen_by_checks.append(seen)
        both_checked.wait(timeout=180)  # generous: on a loaded CI machine one thread can lag far behind
        return seen

    # Both moves then write the alias; SQLite's alias table has no upsert, so two first-ever inserts at the same
    # instant can collide (IntegrityError), which would hide the point: serialise only that write.
    real_client, alias_writes = tracking.client, threading.Lock()

    class SerialAliasClient:
        def __init__(self) -> None:
            self._client = real_client()

        def __getattr__(self, name: str) -> object:
            return getattr(self._client, name)

        def set_registered_model_alias(self, *args: object) -> None:
            with alias_writes:
                self._client.set_registered_model_alias(*args)

    monkeypatch.setattr(tracking, "client", SerialAliasClient)
    monkeypatch.setattr(champion, "current_champion", racing_check)
    always_held = types.SimpleNamespace(ensure_held=lambda: None)
    monkeypatch.setattr(champion, "registry_lock", lambda *a, **k: contextlib.nullcontext(always_held))
    outcomes = _race(usecase, storage)
    assert seen_by_checks == [None, None]  # both checks saw "no champion"...
    assert outcomes == ["won:1", "won:2"], outcomes  # ...and so neither promotion was refused


@pytest.mark.parametrize("kind", BACKENDS)
def test_concurrent_holders_with_a_short_lease_never_overlap(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three holders, each holding longer than the lease: a live holder renews, so it is never taken for dead."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    monkeypatch.setattr(lock, "LEASE_SECONDS", 3.0, raising=False)
    monkeypatch.setattr(lock, "STALE_SECONDS", 3.0, raising=False)  # the same short expiry for a lock without lease
    hold_s = 4.0  # longer than the lease on purpose
    inside: list[str] = []
    overlaps: list[list[str]] = []
    guard = threading.Lock()
    start = threading.Barrier(3)

    errors: list[BaseException] = []

    def holder(name: str) -> None:
        try:
            hold(name)
        except BaseException as exc:  # a thread's exception would otherwise only be printed
            errors.append(exc)

    def hold(name: str) -> None:
        start.wait()
        with lock.registry_lock(storage, USECASE, timeout=120):
            with guard:
                inside.append(name)
                if len(inside) > 1:
                    overlaps.append(list(inside))
            time.sleep(hold_s)
            with guard:
                inside.remove(name)

    with lease_backend(kind, tmp_path, monkeypatch) as (storage, lock_object):
        threads = [threading.Thread(target=holder, args=(f"holder-{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert overlaps == [], f"two holders at once: {overlaps}"
        assert lock_object.read() is None, "the last holder released"
