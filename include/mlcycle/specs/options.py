"""Typed options of a command: one pydantic model yields both the CLI's arguments and a DAG task's argv.

A field `model_version: str` is the flag `--model-version`; its description is the flag's help. The CLI builds
its argparse sub-parser from the model (`add_arguments`) and validates the parsed namespace into it
(`from_namespace`). The DAG factory builds an instance with `for_task(...)`, where any value may be a
`Template` (a Jinja expression Airflow renders at run time, in both launchers alike), and turns it into argv
with `to_argv()`: only the options the task sets, in declaration order. Standard library and pydantic only.

Every argument is validated at the edge, by argparse `type=` functions: each option through its field's type and
constraints (the same the DAG side checks with `for_task`), and the arguments every step shares (`--usecase`,
`--partition`, `--storage-root`) by the functions below. A bad value is then an argparse error, which the CLI
turns into exit 64 (`ExitCode.USAGE`, never retried) naming the argument.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Self, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

#: A use case's name: its folder under the use-case folder, and the first part of its DAG ids, storage paths and
#: model name. No separator and no dot can pass, so a name never leaves the use-case folder.
USECASE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
#: The partitions the lifecycle accepts. Partition arithmetic must stay inside what every layer represents:
#: pandas' nanosecond timestamps (event times, `scored_for` = D + 1 day) end in April 2262, and a look-back of
#: MAX_LOOKBACK_DAYS from 1970 stays far from date.min (year 1, where `date - timedelta` overflows).
FIRST_PARTITION = dt.date(1970, 1, 1)
LAST_PARTITION = dt.date(2261, 12, 31)
#: The longest look-back (ingest/validate --lookback, and so usecase.yaml's split.window_days): ten years.
MAX_LOOKBACK_DAYS = 3660
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STORAGE_SCHEMES = ("s3://", "file://")


def usecase_name(text: str) -> str:
    """A use-case name (`--usecase`): the pattern alone, so nothing is read before it holds."""
    if not USECASE_NAME.match(text):
        raise ValueError(f"{text!r} is not a use-case name (lower_snake_case, 2-41 characters: {USECASE_NAME.pattern})")
    return text


def partition_day(text: str) -> dt.date:
    """A partition (`--partition`, generate's `--start`/`--end`): exactly YYYY-MM-DD, within the accepted range.

    `date.fromisoformat` alone would also take `20260914` and `2026-W37-1`; an empty value is not "today".
    """
    if not _ISO_DAY.match(text):
        raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date: {exc}") from None
    if not FIRST_PARTITION <= day <= LAST_PARTITION:
        raise ValueError(
            f"{text!r} is outside the partitions the lifecycle accepts ({FIRST_PARTITION}..{LAST_PARTITION})"
        )
    return day


def storage_root(text: str) -> str:
    """A storage root (`--storage-root`): a local folder, `file://folder` or `s3://bucket[/prefix]`."""
    if not text.strip():
        raise ValueError("an empty storage root; give a folder or s3://bucket[/prefix]")
    if "://" in text:
        scheme = next((s for s in _STORAGE_SCHEMES if text.startswith(s)), None)
        if scheme is None:
            raise ValueError(f"{text!r}: expected a folder, file://folder or s3://bucket[/prefix]")
        if not text.removeprefix(scheme).strip("/"):
            raise ValueError(f"{text!r} names no {'bucket' if scheme == 's3://' else 'folder'}")
    return text


def _partition_text(text: str) -> str:
    partition_day(text)
    return text


#: An option that is a partition date, kept as its text (generate's --start and --end).
PartitionText = Annotated[str, AfterValidator(_partition_text)]
#: How many partitions back a step looks, the partition itself included.
LookbackDays = Annotated[int, Field(ge=1, le=MAX_LOOKBACK_DAYS)]


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type=` from a parser raising ValueError: argparse then names the argument in the error."""

    def checked(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    checked.__name__ = parse.__name__  # argparse names the type in some messages
    return checked


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


def _argparse_options(model: type[Options], name: str, field: FieldInfo) -> dict[str, Any]:
    """argparse's keyword arguments for one field, its `type=` checking the field's type and constraints."""
    extra = _extra(field)
    kwargs: dict[str, Any] = {}
    if field.description:
        kwargs["help"] = field.description
    if "metavar" in extra:
        kwargs["metavar"] = extra["metavar"]
    if field.annotation is bool:
        return {**kwargs, "action": "store_true"}
    if get_origin(field.annotation) is list:
        item = TypeAdapter(get_args(field.annotation)[0])
        return {**kwargs, "action": "append", "default": [], "type": _validating(item)}
    if field.is_required():
        kwargs["required"] = True
    else:
        default = field.get_default(call_default_factory=True)
        kwargs["default"] = default.value if isinstance(default, Enum) else default
    choices = extra.get("choices") or _choices(field.annotation)
    if choices:
        kwargs["choices"] = list(choices)
    kwargs["type"] = _validating(_adapter(model, name))
    return kwargs


def _validating(adapter: TypeAdapter[Any]) -> Callable[[str], Any]:
    def option_value(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc.errors()[0]['msg']}") from None

    return option_value


class Options(BaseModel):
    """Base of every command's options (a command without options uses it as is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for name, field in cls.model_fields.items():
            parser.add_argument(flag(name), **_argparse_options(cls, name, field))

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
                # One word: what the template renders to (a UI form's text) may start with `-`, which as a
                # separate word argparse would read as a flag.
                argv.append(f"{flag(name)}={value.text}")
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
    """The field's type with its constraints (`ge`, `le`, validators), which pydantic keeps apart in `metadata`."""
    field = model.model_fields[name]
    assert field.annotation is not None  # every options field is annotated (pydantic requires it)
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)])  # type: ignore[arg-type]
