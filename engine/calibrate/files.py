"""Atomic file writes: a reader never sees half a calibration output."""

from __future__ import annotations

from pathlib import Path

from engine.outputs import atomic_write_bytes


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and move it into place."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and move it into place (:mod:`engine.outputs`)."""
    atomic_write_bytes(path, data)
