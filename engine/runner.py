"""Run one controller on one scenario and return its KPIs (simulate, bench, plan)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.controllers import Controller
from engine.loop import ControlLoop, LoopOptions
from engine.metrics import KPIs
from engine.scenario import Scenario

SAMPLE_S = 5  # queue sampling interval when SUMO runs fixed programs

Progress = Callable[[float, float], None]  # (simulated seconds, total)


def run_controller(
    scenario: Scenario,
    controller: Controller,
    options: LoopOptions | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    on_second: Callable[[ControlLoop], None] | None = None,
) -> KPIs:
    """Simulate ``scenario`` under ``controller``; keep tripinfo in ``out`` if given.

    ``on_second`` (for safety checks) is called after every simulated second;
    without it, fixed programs run in ``SAMPLE_S`` blocks.
    """
    options = options or LoopOptions()
    if options.adaptive != controller.adaptive:
        options = LoopOptions(controller.adaptive, options.delta, options.min_green,
                              options.max_green, options.gui)
    loop = ControlLoop(scenario, options)
    setup = getattr(controller, "setup", None)
    try:
        if setup is not None:
            setup(loop)
        loop.reset()
        block = 1 if on_second else (options.delta if controller.adaptive else SAMPLE_S)
        while not loop.done:
            targets = controller.decide(loop.state()) if controller.adaptive else None
            if on_second is None:
                loop.advance(targets=targets, seconds=block)
            else:
                loop.advance(targets=targets, seconds=1)
                on_second(loop)
                for _ in range(options.delta - 1 if controller.adaptive else 0):
                    if loop.done:
                        break
                    loop.advance(seconds=1)
                    on_second(loop)
            if progress is not None:
                progress(loop.time - scenario.begin, scenario.duration)
        kpis = loop.finish()
        if out is not None:
            loop.keep_outputs(out)
        return kpis
    finally:
        loop.close()
