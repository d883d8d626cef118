"""The ``cqsignal`` command: simulate, info, train, evaluate, bench, plan, calibrate.

Every command is the same pipeline with different ends (see the README). Errors
the user can fix are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import CqSignalError

EXIT_USER_ERROR = 2


def _add_scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", default="chongqing",
                   help="embedded network name, a folder with network.yaml, a .sumocfg or a .net.xml")
    p.add_argument("--routes", nargs="+", default=(), help="route files (with a .net.xml)")
    p.add_argument("--period", default=None, help="period of day: am_peak, midday, pm_peak, night, holiday_evening")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=None, help="simulated seconds (default: the scenario's)")
    p.add_argument("--scale", type=float, default=1.0, help="demand multiplier")


def _scenario(args: argparse.Namespace):
    from engine.scenario import Scenario

    return Scenario.load(args.network, period=args.period, seed=args.seed, scale=args.scale,
                         duration=args.duration, routes=args.routes)


def cmd_simulate(args: argparse.Namespace) -> int:
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.metrics import write_json_atomic
    from engine.report import console, kpi_table, progress_bar
    from engine.runner import run_controller

    scenario = _scenario(args)
    controller = load_controller(args.controller, scenario, fallback=args.fallback)
    options = LoopOptions(adaptive=controller.adaptive, delta=args.delta, min_green=args.min_green,
                          max_green=args.max_green, gui=args.gui)
    console.print(f"[bold]{scenario.describe()}[/], controller [bold]{controller.name}[/]")
    out = Path(args.out) if args.out else None
    with progress_bar("simulating", scenario.duration) as advance:
        kpis = run_controller(scenario, controller, options, out=out, progress=advance)
    console.print(kpi_table({controller.name: kpis.to_dict()}))
    if out is not None:
        write_json_atomic(out / "kpis.json", {
            **kpis.to_dict(), "controller": controller.name, "network": scenario.name,
            "period": scenario.period, "seed": scenario.seed, "scale": scenario.scale,
        })
        console.print(f"wrote {out / 'kpis.json'} and {out / 'tripinfo.xml'}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from engine.report import console, intersections_table
    from engine.scenario import Scenario
    from engine.network import read_intersections

    scenario = Scenario.of_network(args.network)
    intersections = read_intersections(scenario.net_file)
    console.print(f"[bold]{scenario.name}[/]: {scenario.net_file}")
    console.print(f"{len(intersections)} signalised intersections")
    console.print(intersections_table(intersections.values(), verbose=args.movements))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cqsignal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run one controller on a scenario and print KPIs")
    _add_scenario_args(p)
    p.add_argument("--controller", default="fixed",
                   help="fixed, webster, max_pressure, sotl, actuated, greedy, or a model .zip")
    p.add_argument("--fallback", action="store_true",
                   help="if the model does not fit this network, use the default heuristic instead")
    p.add_argument("--delta", type=int, default=5, help="seconds between decisions (adaptive controllers)")
    p.add_argument("--min-green", type=float, default=10.0)
    p.add_argument("--max-green", type=float, default=60.0)
    p.add_argument("--gui", action="store_true", help="watch in sumo-gui (TraCI)")
    p.add_argument("--out", default=None, help="folder for kpis.json and tripinfo.xml")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="list signalised intersections, phases and movements")
    p.add_argument("network", nargs="?", default="chongqing")
    p.add_argument("--movements", action="store_true", help="list every movement")
    p.set_defaults(func=cmd_info)

    for name, module in _EXTRA_COMMANDS.items():
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue  # that command is not installed in this build
        mod.add_parser(sub)
    return parser


# Commands that live beside their own code; each module has add_parser(sub).
_EXTRA_COMMANDS = {
    "train": "agents.cli",
    "bench": "benchmarks.cli",
    "plan": "engine.plan.cli",
    "calibrate": "engine.calibrate.cli",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CqSignalError as exc:
        print(f"cqsignal: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("cqsignal: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("CQSIGNAL_DEBUG"):
            raise
        print(f"cqsignal: internal error: {exc.__class__.__name__}: {exc} "
              "(set CQSIGNAL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
