"""``cqsignal calibrate COUNTS``: a calibrated twin from detector or turning-movement counts."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``calibrate`` command."""
    from engine.cli import finite_arg, seed_arg

    p = sub.add_parser(
        "calibrate", help="build demand that reproduces counts (routeSampler) and report GEH",
        description="Sample routes that reproduce 15-minute counts with SUMO's routeSampler.py, "
                    "simulate them, and report the GEH of every count. The output folder is a "
                    "scenario: use it with --network OUTDIR in every command. Exit status 1 when "
                    "fewer than 85 % of counts have GEH < 5.")
    p.add_argument("counts", help="counts CSV (interval_start,interval_end,edge,to_edge,count) or "
                                  "SUMO edgeData/edgeRelation XML")
    p.add_argument("--network", default="chongqing",
                   help="embedded network name, a folder with network.yaml, a .sumocfg or a .net.xml")
    p.add_argument("--out", default=None, help="output folder (default: calibrated/<counts name>)")
    p.add_argument("--begin", default=None, help="first time to calibrate (seconds or HH:MM; default: first count)")
    p.add_argument("--end", default=None, help="last time to calibrate (seconds or HH:MM; default: last count)")
    p.add_argument("--seed", type=seed_arg, default=1, help="seed of routeSampler and of the check run")
    p.add_argument("--bus-share", type=finite_arg("bus share"), default=0.0,
                   help="share of sampled vehicles that are buses")
    p.add_argument("--warmup", type=finite_arg("warmup"), default=900.0,
                   help="seconds of first-interval demand simulated before the first count (default 900)")
    p.add_argument("--candidates", default=None,
                   help="route file of candidate routes (default: every loop-free route in the network)")
    p.add_argument("--edge-attribute", default="entered", help="count attribute of <edge> in XML counts")
    p.add_argument("--turn-attribute", default="count", help="count attribute of <edgeRelation> in XML counts")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.markup import escape

    from engine.calibrate.counts import parse_time
    from engine.calibrate.pipeline import calibrate
    from engine.outputs import check_out, namespace_options, scenario_files, staged_output
    from engine.report import console
    from engine.scenario import Scenario

    out = Path(args.out) if args.out else Path("calibrated") / Path(args.counts).name.split(".")[0]
    check_out(out, CALIBRATE_FILES, command="cqsignal calibrate")  # a bad --out is refused before any work
    begin = parse_time(args.begin, "--begin") if args.begin is not None else None
    end = parse_time(args.end, "--end") if args.end is not None else None
    inputs = [Path(args.counts), *scenario_files(Scenario.of_network(args.network)),
              *([Path(args.candidates)] if args.candidates else [])]
    # the twin is built beside --out and replaces it whole at the end (engine/outputs.py)
    with staged_output(out, command="cqsignal calibrate", options=namespace_options(args), inputs=inputs,
                       known=CALIBRATE_FILES, say=lambda msg: console.print(escape(msg))) as stage:
        result = calibrate(args.counts, network=args.network, out=stage.path, begin=begin, end=end,
                           seed=args.seed, bus_share=args.bus_share, warmup=args.warmup,
                           candidates=args.candidates, edge_attribute=args.edge_attribute,
                           turn_attribute=args.turn_attribute, log=lambda msg: console.print(escape(msg)))
    style = "green" if result.summary.passed else "red"
    console.print(f"[bold {style}]{escape(result.summary.verdict())}[/]")
    console.print(f"wrote {out}/ (network.yaml, routes, calibration.md, calibration.png, geh.csv) "
                  f"in {result.wall_s:.0f} s; simulate it with --network {out}")
    return 0 if result.summary.passed else 1


# what calibrate --out wrote before manifests (a folder of only these may be replaced)
CALIBRATE_FILES = ("network.yaml", "routes.rou.xml", "vtypes.rou.xml", "calibration.md", "calibration.png",
                   "geh.csv", "sampler", "*.net.xml", "*.net.xml.gz", "*.add.xml")
