"""Fixed-time programs as SUMO ``tlLogic``: built from greens, written as an additional file.

A program runs each green phase for its green time followed by the clearance
the network prescribes to the next phase (yellow, all-red), so a timing never
changes the safety intervals, only how long each green lasts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from engine.errors import ConfigError
from engine.signals import Intersection

Program = tuple[tuple[str, float], ...]  # (state, duration) in order


def timing_program(intersection: Intersection, greens: Sequence[float]) -> Program:
    """The cycle that gives green phase k ``greens[k]`` seconds, with the network's clearances."""
    return tuple((state, duration) for state, duration, _ in timing_steps(intersection, greens))


def timing_steps(intersection: Intersection, greens: Sequence[float]) -> tuple[tuple[str, float, int], ...]:
    """:func:`timing_program`'s steps, each with its green phase k: the green, then its clearance.

    The steps start where the network's program starts (SUMO's offset refers to
    the program's first step, which may be a yellow or an all-red), so that the
    same greens and offset reproduce the network's program second by second.
    """
    ix = intersection
    if len(greens) != ix.n_phases:
        raise ConfigError(f"{ix.id}: {len(greens)} greens given for {ix.n_phases} green phases")
    steps: list[tuple[str, float, int]] = []
    for k, green in enumerate(greens):
        if green <= 0:
            raise ConfigError(f"{ix.id}: green of phase {k} must be positive, got {green:g}")
        steps.append((ix.phases[k].state, float(green), k))
        steps.extend((state, duration, k) for state, duration in ix.clearance(k, ix.next_phase(k)))
    lead = ix.phases[0].program_index  # steps of the last clearance that the program puts first
    return tuple(steps[len(steps) - lead:] + steps[:len(steps) - lead]) if lead else tuple(steps)


def tls_xml(
    programs: Mapping[str, Program], program_id: str, offsets: Mapping[str, float] | None = None
) -> str:
    """An additional file holding one static ``tlLogic`` per signal (SUMO runs the last loaded)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n', "<additional>\n"]
    for tls_id, program in programs.items():
        offset = (offsets or {}).get(tls_id, 0.0)
        lines.append(
            f'    <tlLogic id={quoteattr(tls_id)} type="static" programID={quoteattr(program_id)} '
            f'offset="{offset:g}">\n'
        )
        for state, duration in program:
            lines.append(f'        <phase duration="{duration:g}" state="{state}"/>\n')
        lines.append("    </tlLogic>\n")
    lines.append("</additional>\n")
    return "".join(lines)


def write_tls_programs(
    path: Path,
    programs: Mapping[str, Program],
    program_id: str,
    offsets: Mapping[str, float] | None = None,
) -> Path:
    """Write :func:`tls_xml` to ``path`` atomically; returns ``path``."""
    from engine.outputs import atomic_write_text

    return atomic_write_text(path, tls_xml(programs, program_id, offsets))
