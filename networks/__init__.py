"""Embedded SUMO networks: one folder per network, each described by ``network.yaml``.

A network folder holds its plain-XML sources, the built ``.net.xml``, a demand file
and a README with provenance. ``network.yaml`` has the keys ``net`` (file name of
the built net), ``demand`` (file name of the demand definition), ``signals`` (the
traffic-light ids to control) and ``description``. This package knows nothing of
the engine; the engine finds networks through :func:`resolve` and :func:`manifest`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.errors import ConfigError

NETWORKS_DIR: Path = Path(__file__).resolve().parent
MANIFEST = "network.yaml"
_KEYS = ("net", "demand", "signals", "description")


def available() -> list[str]:
    """Names of the embedded networks (folders holding a ``network.yaml``), sorted."""
    return sorted(p.parent.name for p in NETWORKS_DIR.glob(f"*/{MANIFEST}"))


def resolve(name: str) -> Path:
    """Folder of the embedded network ``name``; ConfigError naming the choices if unknown."""
    names = available()
    if name not in names:
        choices = ", ".join(names) or "none"
        raise ConfigError(f"network {name!r} is not embedded; available: {choices}")
    return NETWORKS_DIR / name


def manifest(name: str) -> dict[str, object]:
    """The network's ``network.yaml`` with ``net`` and ``demand`` as absolute paths."""
    folder = resolve(name)
    path = folder / MANIFEST
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(_KEYS)}")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {', '.join(missing)}")
    signals = data["signals"]
    if not isinstance(signals, list) or not all(isinstance(s, str) for s in signals):
        raise ConfigError(f"{path}: 'signals' must be a list of traffic-light ids")
    return {**data, "net": folder / str(data["net"]), "demand": folder / str(data["demand"])}
