"""Console output: KPI tables, intersection listings and a progress bar (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from engine.metrics import KPI_LABELS, PEDESTRIAN_LABELS
from engine.network import Network

console = Console(stderr=False, highlight=False)


def kpi_table(rows: dict[str, dict], title: str | None = None) -> Table:
    """One column per run label, one row per KPI, in engineering units."""
    table = Table(title=title)
    table.add_column("KPI")
    for name in rows:
        table.add_column(escape(name), justify="right")
    labels = dict(KPI_LABELS)
    if any(kpis.get("persons") for kpis in rows.values()):
        labels.update(PEDESTRIAN_LABELS)
    for key, (label, fmt) in labels.items():
        table.add_row(escape(label), *("n/a" if kpis.get(key) is None else fmt.format(kpis[key])
                                       for kpis in rows.values()))
    if any("time_to_teleport_s" in kpis for kpis in rows.values()):  # the options the delay depends on
        for key, label in (("max_depart_delay_s", "max-depart-delay"), ("time_to_teleport_s", "time-to-teleport")):
            table.add_row(label, *(_seconds_or_never(kpis.get(key)) for kpis in rows.values()))
    return table


def _seconds_or_never(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "never"
    return f"{value:g} s"


def intersections_table(network: Network, verbose: bool = False) -> Table:
    """Every signal of ``network``: its program, and each green phase as the movements it serves.

    Signals that cannot be controlled (flashing, a single green) are listed with
    the reason; they run their own program under every controller.
    """
    table = Table()
    for col in ("signal", "program", "phase", "serves", "state", "green s", "cycle s"):
        table.add_column(col, overflow="fold")
    for tid, ix in network.signals.items():
        note = network.uncontrolled.get(tid)
        first = True
        for k, ph in enumerate(ix.phases):
            table.add_row(escape(tid) if first else "", escape(ix.program_id) if first else "", str(k),
                          escape(network.describe_phase(ix, k)), ph.state, f"{ph.duration:g}",
                          f"{ix.cycle:g}" if first else "")
            first = False
        if note:
            table.add_row(escape(tid) if first else "", escape(ix.program_id) if first else "", "-",
                          escape(note.split(": ", 1)[1]), ix.program[0][0], "", f"{ix.cycle:g}")
        if verbose:
            for m in ix.movements:
                kind = "crossing" if m.crossing else f"{m.approach} {m.direction}"
                table.add_row("", "", "", f"link {m.link}: {escape(m.from_lane)} -> {escape(m.to_lane)} ({kind})",
                              "", "", "")
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
