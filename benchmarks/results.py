"""The tidy results table (one row per run) on disk: CSV, Parquet and a resumable journal."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from benchmarks.worker import COLUMNS, RunSpec
from engine.outputs import atomic_path, atomic_write_text

_COUNTS = ("trips", "arrived", "never_inserted", "teleports")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp:
        yield tmp


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def to_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows in run order with the fixed column set (KPIs NaN and ``error`` set for failed runs)."""
    table = pd.DataFrame(list(rows), columns=COLUMNS)
    table["error"] = table["error"].fillna("").astype(str)
    table["seed"] = table["seed"].astype(int)
    table["scale"] = table["scale"].astype(float)
    for col in _COUNTS:  # whole numbers, empty where the run failed
        table[col] = table[col].round().astype("Int64")
    return table


def write_table(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """``runs.csv`` and ``runs.parquet`` in ``out``, each written atomically."""
    csv, parquet = out / "runs.csv", out / "runs.parquet"
    with atomic(csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic(parquet) as tmp:
        table.to_parquet(tmp, index=False, engine="pyarrow")
    return csv, parquet


class Journal:
    """``runs.jsonl``: each finished run as it comes, so an interrupted benchmark can resume."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def reusable(self, specs: Sequence[RunSpec]) -> dict[str, dict]:
        """Successful rows of earlier runs whose inputs equal one of ``specs`` (by digest)."""
        return reusable(read_journal(self.path), specs)

    def start(self, kept: dict[str, dict]) -> None:
        """Begin a journal holding only ``kept``."""
        write_text_atomic(self.path, "".join(_line(d, r) for d, r in kept.items()))

    def add(self, spec: RunSpec, row: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(_line(spec.digest, row))


def read_journal(path: Path) -> dict[str, dict]:
    """Every successful row of a journal, by digest (lines cut short by a kill are skipped)."""
    kept: dict[str, dict] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return kept
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        if not isinstance(entry, dict):
            continue
        digest, row = entry.get("digest"), entry.get("row") or {}
        if isinstance(digest, str) and not row.get("error") and not _nan(row.get("mean_delay_s")):
            kept[digest] = row
    return kept


def reusable(known: dict[str, dict], specs: Sequence[RunSpec]) -> dict[str, dict]:
    """The rows of ``known`` (by digest) that one of ``specs`` would produce."""
    wanted = {s.digest for s in specs}
    return {d: r for d, r in known.items() if d in wanted}


def _line(digest: str, row: dict) -> str:
    return json.dumps({"digest": digest, "row": row}) + "\n"


def _nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
