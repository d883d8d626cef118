"""Environment throughput against a bare libsumo loop (and sumo-rl when installed).

    python benchmarks/throughput.py [--network chongqing] [--period am_peak] [--json]
    python benchmarks/throughput.py --grid 6 --json     # a larger network: 36 signals

In one run, on one scenario and seed:

1. the Gymnasium env steps to the end of the episode with random *legal*
   actions (from ``action_masks()``); every signal state it sets is recorded;
2. a bare libsumo loop runs the same SUMO arguments and replays those signal
   states at the same seconds, so it simulates exactly the same traffic, with
   nothing else on its step path;
3. with the optional ``sumo-rl`` package (``pip install .[bench]``), sumo-rl's
   ``SumoEnvironment`` on the same network, routes and decision interval, in a
   subprocess (libsumo holds one simulation per process); its signal states
   and SUMO command are recorded and replayed by a bare loop as well.

``env_over_bare`` is the env's wall time over the bare loop's for the same
simulated time: the overhead the environment adds. sumo-rl's random policy
makes other traffic than ours (its phases have no all-red), and SUMO's cost per
step follows the traffic, so raw steps/s compare the traffic as much as the
envs: ``env_speed_over_sumo_rl_equal_traffic`` (sumo-rl's overhead over its
bare replay, divided by ours) is the comparison of the two envs. Ratios of one run are what
to read on a noisy machine; the absolute rates move with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_env(options: dict, seed: int) -> tuple[tuple[float, float], int, list, dict, float]:
    """(wall, CPU) time, decisions, the signal states set, the KPIs of one env episode, and
    the wall time the random agent itself took (drawing legal actions from the masks)."""
    from engine.env import CorridorEnv

    env = CorridorEnv(**options)
    record: list[tuple[float, str, str]] = []
    sim = env.core.loop.sim
    set_state = sim.set_state

    def recording(tls_id: str, state: str) -> None:
        record.append((sim.time, tls_id, state))
        set_state(tls_id, state)

    env.core.loop.signals.set_state = recording
    rng = np.random.default_rng(seed)
    start, cpu = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    steps, done, info, agent = 0, False, {}, 0.0
    nvec = env.action_space.nvec
    while not done:
        mask = env.action_masks()
        t0 = time.perf_counter()
        action, offset = [], 0
        for n in nvec:
            allowed = np.flatnonzero(mask[offset: offset + n])
            action.append(int(rng.choice(allowed)))
            offset += n
        agent += time.perf_counter() - t0
        _, _, term, trunc, info = env.step(action)
        done = term or trunc
        steps += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    return (wall, cpu), steps, record, info.get("kpis", {}), agent


def run_bare(scenario, record: list[tuple[float, str, str]]) -> tuple[float, float]:
    """(wall, CPU) time of a plain libsumo loop over the same run, replaying the env's states."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        args = scenario.sumo_args(work, work / "tripinfo.xml", work / "statistics.xml")
        scenario.prepare_routes(work)  # routes written before the clock starts, as for the env
        return replay(args, record, scenario.end)


def replay(args: list[str], record: list, end: float) -> tuple[float, float]:
    """(wall, CPU) time of SUMO started with ``args``, setting the recorded states at their seconds."""
    import libsumo

    from engine.sim import sumo_binary

    start, cpu = time.perf_counter(), time.process_time()
    libsumo.start([sumo_binary(), *args])
    i, n = 0, len(record)
    t = libsumo.simulation.getTime()
    while t < end:
        while i < n and record[i][0] <= t:
            libsumo.trafficlight.setRedYellowGreenState(record[i][1], record[i][2])
            i += 1
        libsumo.simulationStep()
        t = libsumo.simulation.getTime()
    libsumo.close()
    return time.perf_counter() - start, time.process_time() - cpu


SUMO_RL_SCRIPT = r"""
import json, sys, time
import numpy as np
import traci  # with LIBSUMO_AS_TRACI this is libsumo; import it first (libsumo imports traci)
import libsumo
net, routes, seconds, delta, seed, record_file = sys.argv[1:7]
seconds, delta, seed = int(float(seconds)), int(delta), int(seed)
# record the command sumo-rl starts SUMO with and every state it sets, for the bare replay
calls = {"cmd": None, "states": []}
_start, _set = traci.start, libsumo.trafficlight.setRedYellowGreenState
def start(cmd, *a, **k):
    calls["cmd"] = list(cmd)
    return _start(cmd, *a, **k)
def set_state(tls, state):
    calls["states"].append((libsumo.simulation.getTime(), tls, state))
    _set(tls, state)
traci.start = start
libsumo.trafficlight.setRedYellowGreenState = staticmethod(set_state)
from sumo_rl import SumoEnvironment
start_t, cpu = time.perf_counter(), time.process_time()
env = SumoEnvironment(net_file=net, route_file=routes, num_seconds=seconds, delta_time=delta,
                      yellow_time=3, min_green=10, max_green=60, sumo_seed=seed, max_depart_delay=300,
                      time_to_teleport=300, sumo_warnings=False)
rng = np.random.default_rng(seed)
obs = env.reset()
steps, done = 0, False
while not done:
    actions = {ts: int(rng.integers(env.action_spaces(ts).n)) for ts in env.ts_ids}
    obs, rewards, dones, info = env.step(actions)
    done = dones["__all__"]
    steps += 1
end = libsumo.simulation.getTime()
env.close()
wall, cpu = time.perf_counter() - start_t, time.process_time() - cpu
with open(record_file, "w") as f:
    json.dump(calls, f)
print(json.dumps({"wall": wall, "cpu": cpu, "steps": steps, "end": end}))
"""


def run_sumo_rl(scenario, seed: int, delta: int) -> dict | None:
    """sumo-rl on the same net and routes in a subprocess, then a bare replay of its signal states.

    None when sumo-rl is not installed. sumo-rl's random policy makes other
    traffic than ours (its own phases, no all-red), and SUMO's cost per step
    depends on the traffic; so, as for our env, a bare libsumo loop replays
    sumo-rl's states with sumo-rl's own SUMO command, giving its overhead over
    the same traffic (``bare_wall``).
    """
    try:
        import sumo_rl  # noqa: F401
    except ImportError:
        return None
    import sumo

    with tempfile.TemporaryDirectory() as tmp:
        (routes,) = scenario.prepare_routes(Path(tmp)) or (None,)
        record_file = Path(tmp) / "sumo_rl_states.json"
        env = {**os.environ, "LIBSUMO_AS_TRACI": "quiet", "SUMO_HOME": sumo.SUMO_HOME}
        proc = subprocess.run(
            [sys.executable, "-c", SUMO_RL_SCRIPT, str(scenario.net_file), str(routes),
             f"{scenario.duration:g}", str(delta), str(seed), str(record_file)],
            capture_output=True, text=True, env=env,
        )
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        calls = json.loads(record_file.read_text())
        result["bare_wall"], result["bare_cpu"] = replay(calls["cmd"][1:], calls["states"], result["end"])
        return result


def build_grid(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """An n x n signalised grid (2 lanes, 3 s yellow, 2 s all-red) with random trips, for scale."""
    from engine.sim import sumo_binary, sumo_tool

    net, trips = folder / f"grid{n}.net.xml", folder / f"grid{n}.rou.xml"
    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", str(n),
                    "--grid.length", "250", "--grid.attach-length", "200",
                    "--default.lanenumber", "2", "--tls.guess", "true",
                    "--default-junction-type", "traffic_light", "--tls.yellow.time", "3",
                    "--tls.allred.time", "2", "--no-turnarounds", "-o", str(net)],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, sumo_tool("randomTrips.py"), "-n", str(net), "-r", str(trips),
                    "-o", str(folder / f"grid{n}.trips.xml"),
                    "--fringe-factor", "20", "--period", f"{3.0 / n:.3f}", "--seed", str(seed),
                    "--end", "3600", "--validate"],
                   check=True, capture_output=True)
    return net, trips


def measure(network: str, period: str | None, seed: int, duration: float, delta: int,
            routes: tuple[str, ...] = (), repeats: int = 3) -> dict:
    from engine.scenario import Scenario

    options = dict(network=network, period=period, duration=duration, delta=delta, routes=routes)
    scenario = Scenario.load(network, period=period, seed=seed, duration=duration, routes=routes)
    env_times, bare_times, rl_runs, agent_times = [], [], [], []
    for _ in range(repeats):  # alternate, keep the fastest of each: load from others only slows
        env_time, steps, record, kpis, agent = run_env(options, seed)
        env_times.append(env_time)
        agent_times.append(agent)
        bare_times.append(run_bare(scenario, record))
        rl_runs.append(run_sumo_rl(scenario, seed, delta))
    (env_wall, env_cpu), (bare_wall, bare_cpu) = min(env_times), min(bare_times)
    result = {
        "network": scenario.name, "period": period, "seed": seed, "simulated_s": duration,
        "delta_s": delta, "env_steps": steps, "repeats": repeats,
        "env_wall_s": round(env_wall, 3), "bare_wall_s": round(bare_wall, 3),
        "env_steps_per_s": round(steps / env_wall, 1),
        "bare_steps_per_s": round(steps / bare_wall, 1),
        "env_over_bare": round(env_wall / bare_wall, 3),
        "env_over_bare_cpu": round(env_cpu / bare_cpu, 3),
        # the random agent's own time (drawing actions from the masks) is part of env_wall_s
        "agent_wall_s": round(agent_times[env_times.index(min(env_times))], 3),
        "vehicles": kpis.get("trips"),
    }
    rl_ok = [r for r in rl_runs if r and "error" not in r]
    if rl_ok:
        rl_wall = min(r["wall"] for r in rl_ok)
        rl_bare = min(r["bare_wall"] for r in rl_ok)
        rl_steps = rl_ok[0]["steps"]
        result["sumo_rl_steps_per_s"] = round(rl_steps / rl_wall, 1)
        result["sumo_rl_over_bare"] = round(rl_wall / rl_bare, 3)
        # raw rates: each env on the traffic its own random policy makes
        result["env_speed_over_sumo_rl"] = round(result["env_steps_per_s"] / result["sumo_rl_steps_per_s"], 2)
        # at equal traffic: each env's wall time over a bare loop replaying its own states
        result["env_speed_over_sumo_rl_equal_traffic"] = round(
            result["sumo_rl_over_bare"] / result["env_over_bare"], 2)
    elif rl_runs and rl_runs[0]:
        result["sumo_rl_error"] = rl_runs[0]["error"]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="chongqing")
    p.add_argument("--routes", nargs="+", default=())
    p.add_argument("--period", default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=1800.0)
    p.add_argument("--delta", type=int, default=5)
    p.add_argument("--grid", type=int, default=0,
                   help="instead of --network: an N x N signalised grid with random trips")
    p.add_argument("--repeats", type=int, default=3, help="alternating env/bare runs; fastest kept")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.grid:
        folder = Path(tempfile.mkdtemp(prefix="cqsignal-grid-"))
        net, trips = build_grid(folder, args.grid, args.seed)
        args.network, args.routes = str(net), [str(trips)]
    period = args.period or (None if args.routes or args.network.endswith((".sumocfg", ".xml")) else "am_peak")
    result = measure(args.network, period, args.seed, args.duration, args.delta, tuple(args.routes),
                     args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
