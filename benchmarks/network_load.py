"""Load time of the network model on a generated n x n signalised grid (issue target: 20 x 20 <= 10 s).

    python benchmarks/network_load.py --n 20

Times, in one fresh process each: reading the network (sumolib, every signal,
its program, movements, foes and intergreens), building the controllers'
layout with the observation areas, and a second read in the same process
(served from the per-process cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from engine.network import load_network
from engine.layout import build_layout
t1 = time.perf_counter()
net = Path(sys.argv[1])
network = load_network(net)
t2 = time.perf_counter()
layout = build_layout(net.resolve())
t3 = time.perf_counter()
load_network(net)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "layout_s": t3 - t2, "cached_s": t4 - t3,
                  "signals": len(network.signals), "links": sum(ix.n_links for ix in network.signals.values()),
                  "area_lanes": len(layout.area_lanes)}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    from engine.sim import sumo_binary

    with tempfile.TemporaryDirectory() as tmp:
        net = Path(tmp) / f"grid{args.n}.net.xml"
        subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", str(args.n),
                        "--grid.length", "250", "--grid.attach-length", "200", "--default.lanenumber", "2",
                        "--tls.guess", "true", "--default-junction-type", "traffic_light",
                        "--tls.yellow.time", "3", "--tls.allred.time", "2", "--tls.left-green.time", "6",
                        "--no-turnarounds", "-o", str(net)], check=True, capture_output=True)
        size_mb = net.stat().st_size / 1e6
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, str(net)], check=True, capture_output=True,
                                 text=True, cwd=Path(__file__).resolve().parents[1])
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["read_s"] + r["layout_s"])
    print(f"{args.n}x{args.n} grid: {best['signals']} signals, {best['links']} links, {size_mb:.1f} MB .net.xml")
    for r in runs:
        print(f"  read {r['read_s']:.2f} s + layout {r['layout_s']:.2f} s = {r['read_s'] + r['layout_s']:.2f} s "
              f"(second read {r['cached_s'] * 1000:.2f} ms, imports {r['import_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
