"""docs/usecases.md stays true to the config models: every key they accept is documented where it belongs,
every key the reference tables name exists, and the worked example loads.

The doc has two parts, `## \\`usecase.yaml\\` reference` and `## \\`contract.yaml\\` reference`, each made of
`###` sections with tables whose first cell is the key (`` `name` `` or `` `min`, `max` ``). A nested key
counts as documented when its section names it in backticks or inside a `{...}` shape (`{min, max, severity}`).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from mlcycle.config import UseCase, UseCaseConfigError, load_usecase
from mlcycle.schema import DataContract
from mlcycle.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "usecases.md"
USECASE_PART, CONTRACT_PART = "## `usecase.yaml` reference", "## `contract.yaml` reference"
# Filled in by the loader, never written in usecase.yaml (the doc says so in prose, not in a table).
LOADER_FIELDS = {"folder", "data_contract", "target.name"}
# Where the contract reference documents each top-level key's nested keys (`compare` is a shape in the top table).
CONTRACT_SECTIONS = {"columns": "Column spec", "table": "`table`", "rules": "`rules`", "compare": "Top level"}


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models inside an annotation: `X`, `X | None`, `list[X]`, `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif typing.get_origin(annotation) in (list, dict, typing.Union, types.UnionType):
        for arg in (
            typing.get_args(annotation)[-1:] if typing.get_origin(annotation) is dict else typing.get_args(annotation)
        ):
            yield from _models(arg)


def key_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key the model accepts, as a dotted path (`thresholds.gate.metric`; mapping keys are left out)."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if path in LOADER_FIELDS:
            continue
        yield path
        for nested in _models(field.annotation):
            yield from key_paths(nested, f"{path}.")


def _part(text: str, start: str, end: str | None) -> str:
    assert start in text, f"{DOC}: no {start!r} heading"
    part = text.split(start, 1)[1]
    return part.split(end, 1)[0] if end else part


def _sections(part: str) -> dict[str, str]:
    """`### heading` -> its text, within one part of the doc."""
    chunks = re.split(r"^### (.+)$", part, flags=re.MULTILINE)
    return {heading.strip(): body for heading, body in zip(chunks[1::2], chunks[2::2], strict=True)}


def _section(sections: dict[str, str], wanted: str) -> str:
    matches = [body for heading, body in sections.items() if heading.startswith(wanted)]
    assert len(matches) == 1, f"{DOC}: expected one '### {wanted}' section, found {len(matches)}"
    return matches[0]


def _documented(body: str) -> set[str]:
    """Names a section gives: backticked names and paths (`thresholds.gate`) and the members of `{a, b}` shapes."""
    names = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", body))
    for shape in re.findall(r"\{([a-z_][a-z0-9_, ]*)\}", body):
        names.update(part.strip() for part in shape.split(","))
    return names


def _table_keys(body: str) -> set[str]:
    """The keys a section's tables name in their first column."""
    keys: set[str] = set()
    for line in body.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            keys.update(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[1]))
    return keys


TEXT = DOC.read_text(encoding="utf-8")
USECASE_SECTIONS = _sections(_part(TEXT, USECASE_PART, CONTRACT_PART))
CONTRACT_SECTIONS_TEXT = _sections(_part(TEXT, CONTRACT_PART, "## Worked example"))


def _usecase_section(path: str) -> str:
    first = path.split(".")[0]
    return _section(USECASE_SECTIONS, "Top level" if first == path else f"`{first}`")


def _contract_section(path: str) -> str:
    first = path.split(".")[0]
    return _section(CONTRACT_SECTIONS_TEXT, "Top level" if first == path else CONTRACT_SECTIONS[first])


@pytest.mark.parametrize("path", list(key_paths(UseCase)))
def test_every_usecase_key_is_documented_in_its_section(path: str) -> None:
    documented = _documented(_usecase_section(path))
    assert {path, path.rsplit(".", 1)[-1]} & documented, f"{DOC}: usecase.yaml key `{path}` is not documented"


@pytest.mark.parametrize("path", list(key_paths(DataContract)))
def test_every_contract_key_is_documented_in_its_section(path: str) -> None:
    documented = _documented(_contract_section(path))
    assert {path, path.rsplit(".", 1)[-1]} & documented, f"{DOC}: contract.yaml key `{path}` is not documented"


@pytest.mark.parametrize(
    ("sections", "model"),
    [(USECASE_SECTIONS, UseCase), (CONTRACT_SECTIONS_TEXT, DataContract)],
    ids=["usecase", "contract"],
)
def test_the_top_level_tables_name_only_keys_the_models_have(sections: dict[str, str], model: type[BaseModel]) -> None:
    named = _table_keys(_section(sections, "Top level"))
    assert named, f"{DOC}: no keys found in the {model.__name__} top-level table"
    assert named <= set(model.model_fields) - LOADER_FIELDS, (
        f"{DOC}: not keys of {model.__name__}: {named - set(model.model_fields)}"
    )


@pytest.mark.parametrize("first", sorted({p.split(".")[0] for p in key_paths(UseCase) if "." in p}))
def test_usecase_section_tables_name_only_keys_the_models_have(first: str) -> None:
    """A documented key that the model does not accept is a stale line (e.g. a removed or renamed key)."""
    accepted = {p.rsplit(".", 1)[-1] for p in key_paths(UseCase) if p.startswith(f"{first}.")}
    named = _table_keys(_section(USECASE_SECTIONS, f"`{first}`"))
    assert named <= accepted, f"{DOC}: section `{first}` documents keys the model lacks: {sorted(named - accepted)}"


@pytest.mark.parametrize(("first", "model_path"), [("columns", "columns."), ("table", "table.")])
def test_contract_section_tables_name_only_keys_the_models_have(first: str, model_path: str) -> None:
    accepted = {p.split(".")[1] for p in key_paths(DataContract) if p.startswith(model_path)}
    named = _table_keys(_section(CONTRACT_SECTIONS_TEXT, CONTRACT_SECTIONS[first]))
    assert named <= accepted, f"{DOC}: section {first} documents keys the model lacks: {sorted(named - accepted)}"


def test_the_walk_reaches_nested_models_lists_and_mappings() -> None:
    """Nested models, lists of models and mappings of models are walked, so their keys are checked too."""
    paths = set(key_paths(UseCase))
    assert {"roles.features", "thresholds.gate.fairness_group", "resources.gpu_tolerations"} <= paths
    assert {"columns.mean.severity", "table.volume.history", "rules.expectation", "compare.op"} <= set(
        key_paths(DataContract)
    )
    assert "no_such_key" not in _documented(_usecase_section("retraining.no_such_key"))


def _yaml_block_after(label: str) -> str:
    block = re.search(re.escape(label) + r"\s*```yaml\n(.*?)```", TEXT, flags=re.DOTALL)
    assert block, f"{DOC}: no yaml block after {label!r}"
    return block.group(1)


def test_the_worked_example_loads(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    folder.mkdir()
    (folder / "usecase.yaml").write_text(_yaml_block_after("`include/usecases/churn/usecase.yaml`:"))
    (folder / "contract.yaml").write_text(_yaml_block_after("`include/usecases/churn/contract.yaml`:"))
    try:
        usecase = load_usecase(folder / "usecase.yaml")
    except UseCaseConfigError as exc:
        pytest.fail(f"{DOC}: the worked example does not load: {exc}")
    assert usecase.key == "account_id" and usecase.target.name == "churned"


def test_every_test_file_a_doc_names_exists() -> None:
    """docs/security.md and the runbooks cite tests as proof ("tested by"): a cited file that was renamed or never
    written would make a boundary look tested when nothing checks it."""
    repo = Path(__file__).parents[2]
    pages = [*repo.glob("docs/**/*.md"), repo / "README.md", repo / "helm" / "README.md"]
    cited = {
        (page.relative_to(repo), name) for page in pages for name in re.findall(r"tests/[\w/]+\.py", page.read_text())
    }
    missing = sorted(f"{page}: {name}" for page, name in cited if not (repo / name).is_file())
    assert len(cited) > 20 and missing == []


def test_the_fault_drill_catalogue_lists_every_drill_and_each_says_what_it_asserts() -> None:
    import ast

    faults = Path(__file__).parents[1] / "faults"
    catalogue = (faults / "README.md").read_text()
    drills = {}
    for module in sorted(faults.glob("test_*.py")):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                drills[f"{module.name}::{node.name}"] = (node.name, ast.get_docstring(node))
    assert len(drills) >= 20
    assert [d for d, (_, doc) in drills.items() if not doc] == [], "drills without a docstring"
    assert [d for d, (name, _) in drills.items() if f"`{name}`" not in catalogue] == [], "drills missing from README"
