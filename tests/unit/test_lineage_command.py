"""`mlcycle lineage`'s edges: one question per call, a question without an answer, and what it loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlcycle.exitcodes import ExitCode

HEAVY = ("great_expectations", "evidently", "torch", "sklearn")


def test_the_command_loads_no_heavy_library_and_an_unknown_version_is_rejected_by_name(
    mlcycle_env: dict[str, str],
) -> None:
    """Run in a fresh interpreter (this one has loaded everything): what `mlcycle lineage` imports is what it costs."""
    probe = (
        "import json, sys\n"
        "from mlcycle.cli import main\n"
        "code = main(['lineage', '--usecase', 'yarnit', '--model-version', '7'])\n"
        f"print(json.dumps({{'code': code, 'heavy': sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=mlcycle_env, capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result, probed = lines[-2], lines[-1]
    assert probed == {"code": int(ExitCode.REJECTED), "heavy": []}, out.stderr[-2000:]
    assert result["reason"] == "yarnit_model has no version 7"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--model-version", "1", "--partition", "2026-09-20"],
        ["--role", "champion", "--model-version", "1"],
        ["--partition", "20260920"],
    ],
)
def test_exactly_one_question_is_a_usage_error_otherwise(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from mlcycle.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["lineage", "--usecase", "yarnit", *argv])
    assert stopped.value.code == ExitCode.USAGE
    assert "usage" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reason"]
