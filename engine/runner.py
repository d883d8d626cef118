"""Run one controller on one scenario and return its KPIs (simulate, bench, plan)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from engine.controllers import Controller
from engine.loop import ControlLoop, LoopOptions
from engine.metrics import KPIs
from engine.safety import SafetyMonitor
from engine.scenario import Scenario

SAMPLE_S = 5  # queue sampling interval when SUMO runs fixed programs

Progress = Callable[[float, float], None]  # (simulated seconds, total)


def run_controller(
    scenario: Scenario,
    controller: Controller,
    options: LoopOptions | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    monitor: SafetyMonitor | None = None,
) -> KPIs:
    """Simulate ``scenario`` under ``controller``; keep tripinfo in ``out`` if given.

    A ``monitor`` sees every second's signal states (for safety checks).
    """
    options = options or LoopOptions()
    if options.adaptive != controller.adaptive:
        options = dataclasses.replace(options, adaptive=controller.adaptive)
    # what a controller's observations were made with (a trained policy's detector range)
    options = dataclasses.replace(options, **getattr(controller, "loop_overrides", {}))
    loop = ControlLoop(scenario, options, monitor=monitor)
    setup = getattr(controller, "setup", None)
    try:
        if setup is not None:
            setup(loop)
        loop.reset()
        adaptive = loop.options.adaptive  # off where the network has nothing to control
        block = options.delta if adaptive else SAMPLE_S
        while not loop.done:
            targets = controller.decide(loop.state()) if adaptive else None
            loop.advance(targets=targets, seconds=block)
            if progress is not None:
                progress(loop.time - scenario.begin, scenario.duration)
        kpis = loop.finish()
        if out is not None:
            loop.keep_outputs(out)
        return kpis
    finally:
        loop.close()
