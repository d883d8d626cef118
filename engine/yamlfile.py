"""Reading the project's YAML files (configs, demand) with one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.errors import ConfigError


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
    """The parsed content of ``path`` (None for an empty file).

    ConfigError naming the file (and ``what`` it should be) when it cannot be read, is not
    UTF-8 text or is not YAML (with the line and column of the syntax error).
    """
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
