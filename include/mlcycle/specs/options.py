"""Typed options of a command: one pydantic model yields both the CLI's arguments and a DAG task's argv.

A field `model_version: str` is the flag `--model-version`; its description is the flag's help. The CLI builds
its argparse sub-parser from the model (`add_arguments`) and validates the parsed namespace into it
(`from_namespace`). The DAG factory builds an instance with `for_task(...)`, where any value may be a
`Template` (a Jinja expression Airflow renders at run time, in both launchers alike), and turns it into argv
with `to_argv()`: only the options the task sets, in declaration order. Standard library and pydantic only.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Template:
    """An option value Airflow renders at run time (`{{ ... }}`); it stands in for a value of any type."""

    text: str

    def __str__(self) -> str:
        return self.text


class OptionsError(ValueError):
    """Options that a command does not accept; the message names the command's options model and the field."""


def option(
    default: Any = ...,
    *,
    help: str | None = None,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A field with its CLI presentation: help text, metavar, and choices (when the type does not give them)."""
    extra: dict[str, Any] = {}
    if metavar:
        extra["metavar"] = metavar
    if choices:
        extra["choices"] = list(choices)
    if isinstance(default, list):  # a list default is shared by every instance unless it is a factory
        return Field(default_factory=list, description=help, json_schema_extra=extra or None)
    return Field(default, description=help, json_schema_extra=extra or None)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text(value: Any) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def _choices(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [_text(v) for v in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [_text(v) for v in annotation]
    return []


def _argparse_options(field: FieldInfo) -> dict[str, Any]:
    """argparse's keyword arguments for one field."""
    extra = _extra(field)
    kwargs: dict[str, Any] = {}
    if field.description:
        kwargs["help"] = field.description
    if "metavar" in extra:
        kwargs["metavar"] = extra["metavar"]
    if field.annotation is bool:
        return {**kwargs, "action": "store_true"}
    if get_origin(field.annotation) is list:
        return {**kwargs, "action": "append", "default": []}
    if field.is_required():
        kwargs["required"] = True
    else:
        default = field.get_default(call_default_factory=True)
        kwargs["default"] = default.value if isinstance(default, Enum) else default
    choices = extra.get("choices") or _choices(field.annotation)
    if choices:
        kwargs["choices"] = list(choices)
    if field.annotation is int:
        kwargs["type"] = int
    return kwargs


class Options(BaseModel):
    """Base of every command's options (a command without options uses it as is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for name, field in cls.model_fields.items():
            parser.add_argument(flag(name), **_argparse_options(field))

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> Self:
        return cls.model_validate({name: getattr(args, name) for name in cls.model_fields})

    @classmethod
    def for_task(cls, **values: Any) -> Self:
        """Options of a DAG task: plain values are validated now (at parse time), templates at run time by the CLI."""
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise OptionsError(f"{cls.__name__}: no option(s) {unknown}; it has {list(cls.model_fields)}")
        checked: dict[str, Any] = {}
        for name, value in values.items():
            field = cls.model_fields[name]
            if isinstance(value, Template):
                if field.annotation is bool:
                    raise OptionsError(f"{cls.__name__}.{name}: a switch cannot be templated (it is a flag or absent)")
                checked[name] = value
                continue
            try:
                checked[name] = _adapter(cls, name).validate_python(value)
            except ValidationError as exc:
                raise OptionsError(f"{cls.__name__}.{name}: {value!r}: {exc.errors()[0]['msg']}") from None
        missing = [name for name, field in cls.model_fields.items() if field.is_required() and name not in checked]
        if missing:
            raise OptionsError(f"{cls.__name__}: required option(s) {missing} not given")
        return cls.model_construct(**checked)

    def to_argv(self) -> list[str]:
        """The CLI arguments for the options this instance sets (templates left for Airflow to render)."""
        argv: list[str] = []
        for name in type(self).model_fields:
            if name not in self.model_fields_set:
                continue
            value = getattr(self, name)
            if isinstance(value, Template):
                argv += [flag(name), value.text]
            elif isinstance(value, bool):
                argv += [flag(name)] if value else []
            elif isinstance(value, list | tuple):
                for item in value:
                    argv += [flag(name), _text(item)]
            elif value is not None:
                argv += [flag(name), _text(value)]
        return argv


@functools.cache
def _adapter(model: type[Options], name: str) -> TypeAdapter[Any]:
    annotation = model.model_fields[name].annotation
    assert annotation is not None  # every options field is annotated (pydantic requires it)
    return TypeAdapter(annotation)
