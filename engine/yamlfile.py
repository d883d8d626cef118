"""Reading the project's YAML files (configs, demand) with one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.errors import ConfigError


def read_yaml(path: str | Path, what: str = "file") -> object:
    """The parsed content of ``path`` (None for an empty file).

    ConfigError naming the file (and ``what`` it should be) when it cannot be read, is not
    UTF-8 text or is not YAML.
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
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
