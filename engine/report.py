"""Console output: KPI tables, intersection listings and a progress bar (rich)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from engine.metrics import KPI_LABELS
from engine.signals import Intersection

console = Console(stderr=False, highlight=False)


def kpi_table(rows: dict[str, dict], title: str | None = None) -> Table:
    """One column per run label, one row per KPI, in engineering units."""
    table = Table(title=title)
    table.add_column("KPI")
    for name in rows:
        table.add_column(escape(name), justify="right")
    for key, (label, fmt) in KPI_LABELS.items():
        table.add_row(escape(label), *("n/a" if kpis.get(key) is None else fmt.format(kpis[key])
                                       for kpis in rows.values()))
    return table


def intersections_table(intersections: Iterable[Intersection], verbose: bool = False) -> Table:
    table = Table()
    for col in ("signal", "phases (green s)", "cycle s", "lanes in", "movements"):
        table.add_column(col)
    for ix in intersections:
        greens = " | ".join(f"{p.state} ({p.duration:g})" for p in ix.phases)
        moves = len({(m.from_lane, m.to_lane) for m in ix.movements})
        table.add_row(ix.id, greens, f"{sum(d for _, d in ix.program):g}", str(len(ix.in_lanes)),
                      str(moves))
        if verbose:
            for m in ix.movements:
                table.add_row("", f"link {m.link}: {m.from_lane} -> {m.to_lane} ({m.direction})", "", "", "")
    return table


@contextmanager
def progress_bar(label: str, total: float, enabled: bool = True) -> Iterator[Callable[[float, float], None]]:
    """Yields ``update(done, total)``; prints nothing when disabled or not a terminal."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done, tot: progress.update(task, completed=done, total=tot)
