"""Embedded SUMO networks: one folder per network, each described by ``network.yaml``.

A network folder holds its plain-XML sources, the built ``.net.xml``, a demand file
and a README with provenance. ``network.yaml`` has the keys ``net`` (file name of
the built net), ``demand`` (file name of the demand definition), ``signals`` (the
traffic-light ids to control) and ``description``. This package knows nothing of
the engine; the engine finds networks through :func:`resolve` and :func:`manifest`.
"""

from __future__ import annotations

from pathlib import Path

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
    """The network's ``network.yaml`` with ``net`` and ``demand`` as absolute paths.

    Read with the schema every network folder's ``network.yaml`` has
    (:func:`engine.scenario.read_network_yaml`); an embedded network must also give
    every key of ``_KEYS``."""
    from engine.scenario import read_network_yaml

    folder = resolve(name)
    path = folder / MANIFEST
    meta = read_network_yaml(path)
    missing = [k for k in _KEYS if getattr(meta, k) is None]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {', '.join(missing)}")
    data = meta.model_dump(exclude_unset=True)
    return {**data, "signals": list(meta.signals), "net": folder / meta.net, "demand": folder / meta.demand}
