"""Reading the project's YAML files (configs, demand) with one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from engine.errors import ConfigError


# YAML 1.1 reads ``17:00`` as the base-60 integer 1020 (and ``7:00:30`` as 25230) but ``07:00`` as the text
# '07:00': a time of day written without quotes would silently be a number of seconds. YAML 1.2 has no
# base-60 numbers; neither do our files: such a value stays text, which a time field reads as HH:MM[:SS].
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader without YAML 1.1's base-60 numbers."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0] and _BASE60.fullmatch(value):
            return yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG
        return super().resolve(kind, value, implicit)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what a YAML syntax error is, in one line: ``line 3, column 8: mapping values are not
    allowed here`` (lines and columns from 1), with the construct it was in where the parser says."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if not problem:
        return " ".join(str(exc).split()) or exc.__class__.__name__
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else str(problem)
    context, at = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        text += f" ({context}" + (f" that starts on line {at.line + 1}" if at is not None else "") + ")"
    return text


def read_yaml(path: str | Path, what: str = "file") -> object:
    """The parsed content of ``path`` (None for an empty file), as ``yaml.safe_load`` reads it except
    that ``17:00`` is the text '17:00', not YAML 1.1's base-60 number 1020.

    ConfigError naming the file (and ``what`` it should be) when it cannot be read, is not
    UTF-8 text or is not YAML (with the line and column of the syntax error).
    """
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None


def _numeric(annotation: object) -> bool:
    """Whether a field annotation takes only numbers (int or float, alone or in a union with None)."""
    import types
    import typing

    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_numeric(a) for a in args)
    return False


def _numbers_of(annotation: object) -> bool:
    """Whether a field annotation is a list or tuple of numbers."""
    import typing

    if typing.get_origin(annotation) not in (list, tuple):
        return False
    return all(_numeric(a) for a in typing.get_args(annotation) if a is not Ellipsis)


def _not_a_number(value: object) -> bool:
    return isinstance(value, (bool, str))


class ConfigModel(BaseModel):
    """Base of the YAML configs' schemas: unknown keys, NaN and infinity refused (also inside lists and
    maps), values frozen, and where a number (or a list of numbers) is expected YAML's
    ``yes``/``no``/``true``/``false`` and quoted text refused (pydantic would read them as 1, 0 or
    the number the text spells)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: object, info: ValidationInfo) -> object:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if _numeric(annotation) and _not_a_number(value):
            raise ValueError(f"expected a number, got {value!r}" + _HINT * isinstance(value, bool))
        if _numbers_of(annotation) and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if _not_a_number(item):
                    raise ValueError(f"[{i}]: expected a number, got {item!r}" + _HINT * isinstance(item, bool))
        return value


_HINT = " (YAML reads yes/no and true/false as booleans)"
