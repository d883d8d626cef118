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


# -- argument types: a bad number is refused at parse time, in one line ---------------
def _number(text: str, what: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what} must be a finite number, got {text!r}")
    return value


def duration_arg(text: str) -> float:
    """Simulated seconds: positive, finite, at most a week."""
    from engine.scenario import MAX_DURATION_S

    value = _number(text, "duration")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text}")
    if value > MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"duration {text} s is longer than the limit of "
                                         f"{MAX_DURATION_S:g} s (7 days)")
    return value


def time_arg(text: str) -> float:
    """A simulation time: seconds, HH:MM or HH:MM:SS; finite and >= 0."""
    from engine.errors import ConfigError
    from engine.scenario import MAX_BEGIN_S, parse_seconds

    try:
        value = parse_seconds(text, "value")
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected a time (seconds or HH:MM[:SS]), got {text!r}") from None
    if not 0 <= value <= MAX_BEGIN_S + 7 * 86400:
        raise argparse.ArgumentTypeError(f"expected a time between 0 and {MAX_BEGIN_S:g} s, got {text!r}")
    return value


def scale_arg(text: str) -> float:
    from engine.scenario import MAX_SCALE

    value = _number(text, "scale")
    if not 0 < value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(f"scale must be positive and at most {MAX_SCALE:g}, got {text}")
    return value


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None


def seed_arg(text: str) -> int:
    """A SUMO seed: a whole number in 0..2**31-1."""
    from engine.scenario import MAX_SEED

    value = _whole(text, "seed")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {text} is outside SUMO's range 0..{MAX_SEED}")
    return value


MAX_SEED_COUNT = 10_000


def seed_count_arg(text: str) -> int:
    """How many seeds: 1..10,000."""
    value = _whole(text, "seed count")
    if not 1 <= value <= MAX_SEED_COUNT:
        raise argparse.ArgumentTypeError(f"seed count must be between 1 and {MAX_SEED_COUNT:,}, got {text}")
    return value


def finite_arg(what: str, low: float = 0.0):
    """An argparse type: a finite number >= ``low``, named ``what`` in the error."""

    def parse(text: str) -> float:
        value = _number(text, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be >= {low:g}, got {text}")
        return value

    return parse


def positive_int_arg(what: str):
    """An argparse type: a whole number >= 1, named ``what`` in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be >= 1, got {text}")
        return value

    return parse


def never_or_seconds(text: str) -> float:
    """Seconds for --max-depart-delay / --time-to-teleport; 'never' (or a negative number) is -1."""
    if text.strip().lower() in ("never", "none", "off"):
        return -1.0
    return _number(text, "value")


def ray_address_arg(text: str) -> str:
    """An argparse type: a Ray address that can work, checked before any work (engine.runs.check_ray)."""
    from engine.errors import ConfigError
    from engine.runs import check_ray

    try:
        check_ray(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_ray_arg(p: argparse.ArgumentParser) -> None:
    """--ray ADDRESS: run the simulations on a Ray cluster (bench, plan, evaluate)."""
    p.add_argument("--ray", default=None, metavar="ADDRESS", type=ray_address_arg,
                   help="run the simulations on a Ray cluster ('auto', 'ray://host:10001', or 'local' "
                        "for a private one); needs the optional ray extra")


def add_sumo_option_args(p: argparse.ArgumentParser) -> None:
    """--max-depart-delay and --time-to-teleport (simulate, evaluate)."""
    p.add_argument("--max-depart-delay", type=never_or_seconds, default=None, metavar="S",
                   help="drop a vehicle that could not enter within S seconds, charging it that wait "
                        "(default: never, SUMO's default, or the .sumocfg's value)")
    p.add_argument("--time-to-teleport", type=never_or_seconds, default=None, metavar="S",
                   help="teleport a vehicle stuck for S seconds, or 'never' (default: 300, "
                        "SUMO's default, or the .sumocfg's value)")


def _add_scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", default="chongqing",
                   help="embedded network name, a folder with network.yaml, a .sumocfg or a .net.xml")
    p.add_argument("--routes", nargs="+", default=(), help="route files (with a .net.xml)")
    p.add_argument("--period", default=None, help="period of day: am_peak, midday, pm_peak, night, holiday_evening")
    p.add_argument("--seed", type=seed_arg, default=1, help="demand and SUMO seed (0..2147483647)")
    p.add_argument("--begin", type=time_arg, default=None,
                   help="start of the window, s or HH:MM[:SS] (default: the scenario's, else 0)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--duration", type=duration_arg, default=None,
                        help="simulated seconds, at most 7 days (default: the scenario's, else 3600)")
    window.add_argument("--end", type=time_arg, default=None, help="end of the window, s or HH:MM[:SS]")
    p.add_argument("--scale", type=scale_arg, default=1.0, help="demand multiplier")
    add_sumo_option_args(p)


def _scenario(args: argparse.Namespace):
    from engine.scenario import Scenario

    return Scenario.load(args.network, period=args.period, seed=args.seed, scale=args.scale,
                         duration=args.duration, routes=args.routes, begin=args.begin, end=args.end,
                         max_depart_delay=args.max_depart_delay, time_to_teleport=args.time_to_teleport)


def cmd_simulate(args: argparse.Namespace) -> int:
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.outputs import atomic_write_json
    from engine.report import console, kpi_table, progress_bar
    from engine.runner import run_controller
    from engine.signal_controller import check_green_bounds
    from engine.sim import check_display

    from engine.outputs import check_out, model_files, namespace_options, scenario_files, staged_output

    out = Path(args.out) if args.out else None
    if out is not None:
        check_out(out, SIMULATE_FILES, command="cqsignal simulate")  # a bad --out is refused before any work
    if args.gui:
        check_display()  # at once, not after SUMO has tried for a minute
    check_green_bounds(args.min_green, args.max_green)
    scenario = _scenario(args)
    controller = load_controller(args.controller, scenario, fallback=args.fallback)
    options = LoopOptions(adaptive=controller.adaptive, delta=args.delta, min_green=args.min_green,
                          max_green=args.max_green, gui=args.gui, detector_range_m=args.detector_range)
    console.print(f"[bold]{scenario.describe()}[/], controller [bold]{controller.name}[/]")
    from engine.network import load_network

    for reason in load_network(scenario.net_file, scenario.additional_files).uncontrolled.values():
        console.print(f"not controlled: {reason}")
    if out is None:
        with progress_bar("simulating", scenario.duration) as advance:
            kpis = run_controller(scenario, controller, options, progress=advance)
        console.print(kpi_table({controller.name: kpis.to_dict()}))
        return 0
    # the folder is built beside --out and replaces it whole at the end (engine/outputs.py)
    with staged_output(out, command="cqsignal simulate", options=namespace_options(args),
                       inputs=scenario_files(scenario) + model_files(getattr(controller, "model_path", None)),
                       known=SIMULATE_FILES, say=console.print) as stage:
        with progress_bar("simulating", scenario.duration) as advance:
            kpis = run_controller(scenario, controller, options, out=stage.path, progress=advance)
        console.print(kpi_table({controller.name: kpis.to_dict()}))
        atomic_write_json(stage.path / "kpis.json", {
            **kpis.to_dict(), "end_s": scenario.end, "controller": controller.name, "network": scenario.name,
            "period": scenario.period, "seed": scenario.seed, "scale": scenario.scale,
        })
    console.print(f"wrote {out / 'kpis.json'} and {out / 'tripinfo.xml'} ({out / 'manifest.json'} lists them)")
    return 0


SIMULATE_FILES = ("kpis.json", "tripinfo.xml", "statistics.xml")  # what simulate --out wrote before manifests


def cmd_info(args: argparse.Namespace) -> int:
    from engine.network import load_network
    from engine.report import console, intersections_table
    from engine.scenario import Scenario

    scenario = Scenario.of_network(args.network)
    network = load_network(scenario.net_file, scenario.additional_files)
    console.print(f"[bold]{scenario.name}[/]: {scenario.net_file}")
    console.print(f"{len(network.signals)} signals, {len(network.controllable)} controllable")
    for reason in network.uncontrolled.values():
        console.print(f"not controlled: {reason}")
    console.print(intersections_table(network, verbose=args.movements))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cqsignal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run one controller on a scenario and print KPIs")
    _add_scenario_args(p)
    p.add_argument("--controller", default="fixed",
                   help="fixed, webster, max_pressure, sotl, actuated, greedy, or a model .zip")
    p.add_argument("--fallback", action="store_true",
                   help="if the model does not fit this network, use the default heuristic instead")
    p.add_argument("--delta", type=positive_int_arg("delta"), default=5,
                   help="seconds between decisions (adaptive controllers)")
    p.add_argument("--min-green", type=finite_arg("min green"), default=10.0)
    p.add_argument("--max-green", type=finite_arg("max green"), default=60.0)
    p.add_argument("--detector-range", type=finite_arg("detector range"), default=150.0, metavar="M",
                   help="how far upstream adaptive controllers see each approach, m (0: the stop-line lane only)")
    p.add_argument("--gui", action="store_true", help="watch in sumo-gui (TraCI)")
    p.add_argument("--out", default=None, help="folder for kpis.json and tripinfo.xml")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="list signalised intersections, phases and movements")
    p.add_argument("network", nargs="?", default="chongqing")
    p.add_argument("--movements", action="store_true", help="list every movement")
    p.set_defaults(func=cmd_info)

    for module in _EXTRA_COMMANDS.values():
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
    "twin": "engine.twin.cli",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
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
