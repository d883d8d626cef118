"""Outputs that are whole or absent (engine/outputs.py), workers that die with their parent
(engine/procs.py), and kill -9 at random moments of every command that writes a folder.

The kill tests run the real ``cqsignal`` commands as subprocesses on small configs, send
SIGKILL to the command's own process only (never its process group: its workers must die
by themselves), and check that the destination holds a complete set (its manifest matches
its files) and that no process of the run is left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from engine.errors import ConfigError
from engine.outputs import (FILE_MODE, MANIFEST, OutputLock, atomic_path, atomic_write_json, atomic_write_text,
                            check_out, publish_file_set, read_manifest, recover, recover_file_set, sha256_file,
                            staged_output, verify_manifest)

PY = [sys.executable, "-m", "engine.cli"]


def dead_pid() -> int:
    """The pid of a process that has ended (for names and locks a killed run would leave)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- single files ---------------------------------------------------------------------------------
def test_atomic_write_gives_whole_files_with_one_mode_and_no_leftovers(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert target.stat().st_mode & 0o777 == FILE_MODE
    atomic_write_text(target, "replaced\n")
    assert target.read_text() == "replaced\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".plot.png.tmp-")
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_temporaries_have_unique_names_and_dead_writers_ones_are_cleaned(tmp_path):
    target = tmp_path / "x.txt"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    stale = tmp_path / f".x.txt.tmp-{dead_pid()}-abcd1234.txt"
    stale.write_text("left by a killed writer")
    atomic_write_text(target, "new")
    assert not stale.exists() and target.read_text() == "new"


# -- staged folders --------------------------------------------------------------------------------
def test_staged_output_replaces_the_folder_whole_with_a_manifest(tmp_path):
    dest = tmp_path / "out"
    inp = tmp_path / "input.txt"
    inp.write_text("demand")
    with staged_output(dest, command="test", options={"seed": 1}, inputs=[inp]) as stage:
        (stage.path / "a.txt").write_text("1")
        (stage.path / "plots").mkdir()
        (stage.path / "plots" / "p.png").write_bytes(b"png")
        assert not dest.exists()  # nothing is visible before the end
    assert verify_manifest(dest) == []
    m = read_manifest(dest)
    assert set(m["files"]) == {"a.txt", "plots/p.png"}
    assert m["inputs"] == {str(inp.resolve()): sha256_file(inp)}
    assert m["options"] == {"seed": 1} and m["code_version"]["cqsignal"] and m["completed_at"]

    with staged_output(dest, options={"seed": 2}) as stage:
        (stage.path / "b.txt").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt", MANIFEST]  # no file of the old set
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt", "out"]  # no staging, aside or lock


def test_a_failed_run_leaves_the_previous_folder(tmp_path):
    dest = tmp_path / "out"
    with staged_output(dest) as stage:
        (stage.path / "a.txt").write_text("1")
    before = read_manifest(dest)
    with pytest.raises(ValueError), staged_output(dest) as stage:
        (stage.path / "a.txt").write_text("changed")
        raise ValueError("simulation failed")
    assert read_manifest(dest) == before and verify_manifest(dest) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_without_renameat2_goes_through_an_aside_folder(tmp_path, monkeypatch):
    import engine.outputs as outputs

    monkeypatch.setattr(outputs, "_EXCHANGE", None)
    dest = tmp_path / "out"
    for n in range(2):
        with staged_output(dest) as stage:
            (stage.path / f"{n}.txt").write_text(str(n))
    assert sorted(p.name for p in dest.iterdir()) == ["1.txt", MANIFEST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _complete(folder: Path, name: str, when: str) -> None:
    from engine.outputs import build_manifest

    folder.mkdir()
    (folder / name).write_text(name)
    m = build_manifest(folder)
    m["completed_at"] = when
    (folder / MANIFEST).write_text(json.dumps(m))


def test_recovery_after_a_kill_between_the_two_renames(tmp_path):
    """The fallback swap's window: the old folder aside, the new one still staged."""
    pid = dead_pid()
    dest = tmp_path / "out"
    _complete(tmp_path / f"out.old-{pid}-aaaa", "old.txt", "2020-01-01T00:00:00+00:00")
    _complete(tmp_path / f"out.tmp-{pid}-bbbb", "new.txt", "2020-01-01T00:00:01+00:00")
    (tmp_path / f"out.tmp-{pid}-cccc").mkdir()  # a run killed while writing (no manifest)
    done = recover(dest)
    assert (dest / "new.txt").is_file() and verify_manifest(dest) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert any("restored its new complete set" in line for line in done)


def test_recovery_puts_back_the_previous_folder_when_the_new_one_is_incomplete(tmp_path):
    pid = dead_pid()
    dest = tmp_path / "out"
    _complete(tmp_path / f"out.old-{pid}-aaaa", "old.txt", "2020-01-01T00:00:00+00:00")
    (tmp_path / f"out.tmp-{pid}-bbbb").mkdir()
    (tmp_path / f"out.tmp-{pid}-bbbb" / "half.txt").write_text("h")
    recover(dest)
    assert (dest / "old.txt").is_file() and verify_manifest(dest) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_next_run_cleans_what_a_killed_run_left(tmp_path):
    dest = tmp_path / "out"
    with staged_output(dest) as stage:
        (stage.path / "a.txt").write_text("1")
    pid = dead_pid()
    (tmp_path / f"out.tmp-{pid}-dddd").mkdir()
    (tmp_path / f"out.tmp-{pid}-dddd" / "runs.jsonl").write_text('{"digest": "x", "row": {}}\n')
    (tmp_path / "out.lock").write_text(json.dumps({"pid": pid, "host": os.uname().nodename}))
    salvaged = []
    lines = []
    with staged_output(dest, salvage=salvaged.append, say=lines.append) as stage:
        (stage.path / "b.txt").write_text("2")
    assert [p.name for p in salvaged] == [f"out.tmp-{pid}-dddd"]
    assert any("took over the lock" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- checking --out -------------------------------------------------------------------------------
def test_out_that_cannot_work_is_refused_in_one_line(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out(afile)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out(afile / "below")
    with pytest.raises(ConfigError, match="cannot write in"):
        check_out("/proc/cqsignal-out")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files cqsignal did not write there \(e.g. notes.txt\)"):
        check_out(theirs)
    check_out(theirs, known=("notes.txt",))  # an output of this command from before manifests
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")
    check_out(tmp_path / "new" / "deeper")


@pytest.mark.parametrize("argv", [
    ["simulate", "--duration", "60", "--out", "{file}"],
    ["plan", "configs/plan_chongqing.yaml", "--out", "{file}"],
    ["calibrate", "networks/chongqing/counts/am_peak_counts.csv", "--out", "{file}"],
    ["bench", "configs/bench_quick.yaml", "--out", "{file}"],
    ["simulate", "--duration", "60", "--out", "/proc/cqsignal-out"],
    ["evaluate", "corridor_ppo", "--out", "{dir}"],
])
def test_cli_refuses_a_bad_out_before_any_work(argv, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.format(file=afile, dir=tmp_path) for a in argv]
    t0 = time.perf_counter()
    proc = subprocess.run(PY + argv, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "--out" in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - t0 < 30  # refused up front, not after the work
    assert afile.read_text() == "x"


# -- the lock ---------------------------------------------------------------------------------------
def test_second_run_into_a_busy_out_refuses_and_a_stale_lock_is_taken_over(tmp_path):
    dest = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from engine.outputs import OutputLock
        with OutputLock({str(dest)!r}):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"in use by another cqsignal run \(pid {holder.pid} on "):
            OutputLock(dest).acquire()
        with pytest.raises(ConfigError, match="in use by another cqsignal run"):
            check_out(dest)
    finally:
        holder.kill()  # kill -9: the lock file stays, its flock goes
        holder.wait()
    assert (tmp_path / "out.lock").is_file()
    check_out(dest)  # stale: nobody holds it
    with OutputLock(dest) as lock:
        assert lock.took_over["pid"] == holder.pid
        assert json.loads((tmp_path / "out.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "out.lock").exists()


def test_lock_of_a_gone_pid_is_stale_even_without_flock(tmp_path):
    lockfile = tmp_path / "out.lock"
    lockfile.write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename}))
    assert OutputLock(tmp_path / "out").holder() is None
    with OutputLock(tmp_path / "out") as lock:
        assert lock.took_over is not None


# -- sets of files in a shared folder (a model and its meta) ------------------------------------------
def _model_set(folder: Path, payload: bytes) -> None:
    def seal(path: Path, hashes: dict) -> None:
        path.write_text(json.dumps({"artefact": {"files": hashes}}))

    publish_file_set({folder / "m.zip": lambda p: p.write_bytes(payload)}, folder / "m.meta.json", seal)


def _set_is_whole(folder: Path) -> bool:
    meta = json.loads((folder / "m.meta.json").read_text())
    return meta["artefact"]["files"]["m.zip"] == sha256_file(folder / "m.zip")


def test_file_set_is_replaced_as_a_set_and_completed_after_a_kill(tmp_path):
    _model_set(tmp_path, b"one")
    assert _set_is_whole(tmp_path)
    _model_set(tmp_path, b"two")
    assert _set_is_whole(tmp_path) and (tmp_path / "m.zip").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.meta.json", "m.zip"]
    # a writer killed in the middle of putting a committed set in place: old seal gone, new zip in
    pid = dead_pid()
    committed = tmp_path / f".m.meta.json.set-commit-{pid}-abcd"
    committed.mkdir()
    (committed / "m.meta.json").write_text(json.dumps({"artefact": {"files": {"m.zip": sha256_file_bytes(b"3")}}}))
    (tmp_path / "m.meta.json").unlink()
    (tmp_path / "m.zip").write_bytes(b"3")
    assert recover_file_set(tmp_path / "m.meta.json")
    assert _set_is_whole(tmp_path) and not committed.exists()
    # an uncommitted one is dropped
    (tmp_path / f".m.meta.json.set-tmp-{pid}-efgh").mkdir()
    assert not recover_file_set(tmp_path / "m.meta.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.meta.json", "m.zip"]


def sha256_file_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- resume keys ---------------------------------------------------------------------------------------
def test_bench_key_follows_file_contents_not_paths(grid, tmp_path):
    from benchmarks.compare import plan_runs
    from benchmarks.config import parse_config

    net, routes = grid
    mine = tmp_path / "routes.rou.xml"
    mine.write_text(routes.read_text())
    raw = {"name": "k", "duration": 60, "seeds": [1], "baseline": "fixed", "controllers": ["fixed"],
           "scenarios": [{"network": str(net), "routes": [str(mine)]}]}
    config = parse_config(raw, "k.yaml")
    first = [s.digest for s in plan_runs(config, tmp_path).specs]
    assert first == [s.digest for s in plan_runs(config, tmp_path).specs]
    mine.write_text(routes.read_text().replace('vehsPerHour="600"', 'vehsPerHour="601"'))
    assert [s.digest for s in plan_runs(config, tmp_path).specs] != first  # same path, new contents


def test_train_resume_refuses_changed_inputs(grid, tmp_path):
    from agents.config import validate_config
    from agents.train import INPUTS_FILE, Run

    net, routes = grid
    mine = tmp_path / "routes.rou.xml"
    mine.write_text(routes.read_text())
    out = tmp_path / "run"
    raw = {"name": "t", "mode": "shared", "total_timesteps": 64,
           "env": {"network": str(net), "routes": [str(mine)], "period": None, "duration": 60},
           "eval": {"seeds": [150001], "baseline": None}, "output": str(out)}
    config = validate_config(raw)
    ckpt = out / "checkpoints" / "step_0000000064"
    ckpt.mkdir(parents=True)
    (ckpt / "model.zip").write_bytes(b"")
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": ckpt.name}))
    (out / INPUTS_FILE).write_text(json.dumps(Run(config, resume=True).inputs()))  # as the run recorded them
    Run(config, resume=True)  # same contents, same code: resumes
    mine.write_text(routes.read_text().replace('vehsPerHour="600"', 'vehsPerHour="601"'))
    with pytest.raises(ConfigError, match=r"--resume: .*routes.rou.xml changed since the run"):
        Run(config, resume=True)
    saved = json.loads((out / INPUTS_FILE).read_text())
    mine.write_text(routes.read_text())
    saved["code_version"] = {"cqsignal": "0.0.1", "commit": "0" * 40}
    (out / INPUTS_FILE).write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"was started by cqsignal 0.0.1 \(commit 000000000000\)"):
        Run(config, resume=True)


# -- workers die with their parent -------------------------------------------------------------------
def _session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, command) of the live (not zombie) processes in session ``sid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append((int(entry), cmd[:160]))
    return out


def _survivors(sid: int, wait_s: float = 10.0) -> list[tuple[int, str]]:
    deadline = time.time() + wait_s
    while True:
        left = _session_processes(sid)
        if not left or time.time() > deadline:
            return left
        time.sleep(0.1)


def _kill_session(sid: int) -> None:
    for pid, _ in _session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["spawn", "forkserver", "run_all", "subprocess"])
def test_workers_die_with_a_killed_parent(how):
    """A forkserver's workers keep its "alive" pipe open: they must watch the process that asked."""
    code = textwrap.dedent(f"""
        import multiprocessing as mp, os, subprocess, sys, time
        from engine.procs import child_kwargs, die_with_parent

        def work(ancestor):
            die_with_parent(ancestor)
            time.sleep(120)

        if __name__ == "__main__":
            how = {how!r}
            if how == "subprocess":
                child = subprocess.Popen(["sleep", "120"], **child_kwargs())
            elif how == "run_all":
                sys.path.insert(0, {str(Path(__file__).parent)!r})
                from engine.runs import run_all
                from test_runs import _work
                run_all(_work, [("sleep", 120)])  # the worker prints its own pid
                child = None
            else:
                child = mp.get_context(how).Process(target=work, args=(os.getpid(),))
                child.start()
            if child is not None:
                print(child.pid, flush=True)
            time.sleep(120)
        """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        time.sleep(1.0)  # the worker is past its start
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _survivors(parent.pid) == []
        assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"
    finally:
        _kill_session(parent.pid)


# -- kill -9 at random moments ----------------------------------------------------------------------------
KILLS: list[dict] = []  # what each kill left, printed at the end (pytest -s)


def _kill_at(argv: list[str], delay: float, cwd: Path) -> dict:
    """Run ``cqsignal argv``; SIGKILL its own process after ``delay`` s; what is left of the run."""
    proc = subprocess.Popen(PY + argv, cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        killed = True
    proc.wait()
    survivors = _survivors(proc.pid)
    _kill_session(proc.pid)  # (a survivor would hold stderr open)
    err = proc.stderr.read().decode(errors="replace")
    return {"killed": killed, "rc": proc.returncode, "stderr": err, "survivors": survivors}


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(dest.name + ".")
                  and not p.name.endswith((".yaml", ".csv")))


def _check_folder(command: str, dest: Path, previous: dict, delay: float, result: dict) -> str:
    """The destination after a kill: the previous complete set or a new complete one."""
    assert result["survivors"] == [], f"{command}: processes of the killed run survive: {result['survivors']}"
    if not result["killed"]:
        assert result["rc"] in (0, 1), result["stderr"]
    left = _leftovers(dest)
    if not dest.exists():  # only in the aside window of a swap without renameat2
        recover(dest)
        what = "absent; recovered"
    else:
        what = None
    assert verify_manifest(dest) == [], f"{command}: a mixed folder after a kill at {delay:.2f} s"
    m = read_manifest(dest)
    same = m["files"] == previous["files"] and m["completed_at"] == previous["completed_at"]
    what = what or ("previous set" if same else "new set")
    KILLS.append({"command": command, "delay_s": round(delay, 2), "killed": result["killed"],
                  "destination": what, "left beside it": ", ".join(left) or "-", "survivors": 0})
    return what


def _kill_series(command: str, first: list[str], again: list[str], dest: Path, rng: random.Random, kills: int,
                 cwd: Path, finish: list[str] | None = None) -> list[str]:
    """A complete run, ``kills`` runs with other options killed at random moments of their
    expected run time (measured on a complete run), then a clean complete run."""
    done = _kill_at(first, 600, cwd)
    assert done["rc"] in (0, 1) and verify_manifest(dest) == [], done["stderr"]
    t0 = time.perf_counter()
    timed = _kill_at(again, 600, cwd)  # how long the killed command takes when it is not killed
    span = time.perf_counter() - t0
    assert timed["rc"] in (0, 1) and verify_manifest(dest) == [], timed["stderr"]
    outcomes, killed = [], 0
    for _ in range(3 * kills):
        if killed == kills:
            break
        delay = rng.uniform(0.03, 0.97) * span
        previous = read_manifest(dest)
        t0 = time.perf_counter()
        result = _kill_at(again, delay, cwd)
        outcomes.append(_check_folder(command, dest, previous, delay, result))
        killed += result["killed"]
        if not result["killed"]:  # it ran faster this time: aim within its shorter run
            span = min(span, time.perf_counter() - t0)
    assert killed == kills
    last = _kill_at(finish or again, 600, cwd)
    assert last["rc"] in (0, 1), last["stderr"]
    assert verify_manifest(dest) == [] and _leftovers(dest) == [], _leftovers(dest)
    return outcomes


@pytest.fixture(scope="module", autouse=True)
def print_kills():
    yield
    if KILLS:
        print("\n| command | delay [s] | killed | destination | left beside it | survivors |")
        print("|---|---|---|---|---|---|")
        for k in KILLS:
            print(f"| {k['command']} | {k['delay_s']} | {'yes' if k['killed'] else 'no (done)'} | "
                  f"{k['destination']} | {k['left beside it']} | {k['survivors']} |")


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_simulate(tmp_path):
    dest = tmp_path / "sim"
    base = ["simulate", "--period", "am_peak", "--duration", "300", "--out", str(dest)]
    _kill_series("simulate", base + ["--seed", "1"], base + ["--seed", "2"], dest, random.Random(151), 6, REPO)


@pytest.mark.slow
def test_kill_plan(tmp_path):
    dest = tmp_path / "plan"
    quick = tmp_path / "webster.yaml"
    quick.write_text(yaml.safe_dump({
        "network": "chongqing", "periods": ["am_peak"], "method": "webster",
        "evaluation": {"duration_s": 60, "seeds": [1], "workers": 1},
        "report": {"enabled": True, "seeds": [1], "duration_s": 60}}))
    search = tmp_path / "optimise.yaml"  # the search runs its simulations in 2 worker processes
    search.write_text(yaml.safe_dump({
        "network": "chongqing", "periods": ["am_peak"], "method": "optimise",
        "evaluation": {"duration_s": 60, "seeds": [1, 2], "workers": 2},
        "optimiser": {"trials": 2, "search_seeds": 2, "refine_trials": 2, "finalists": 1,
                      "try_right_turn_overlaps": False},
        "report": {"enabled": True, "seeds": [1], "duration_s": 60}}))
    _kill_series("plan", ["plan", str(quick), "--out", str(dest), "-q"],
                 ["plan", str(search), "--out", str(dest), "-q"], dest, random.Random(152), 4, REPO,
                 finish=["plan", str(quick), "--out", str(dest), "-q"])


@pytest.fixture(scope="module")
def grid_counts(make_grid_counts) -> Path:
    """One 15-minute interval of counts on the grid (every entry and turn)."""
    return make_grid_counts(1)


@pytest.mark.slow
def test_kill_calibrate(grid, grid_counts, tmp_path):
    net, _ = grid
    dest = tmp_path / "twin"
    base = ["calibrate", str(grid_counts), "--network", str(net), "--out", str(dest), "--warmup", "0"]
    _kill_series("calibrate", base + ["--seed", "1"], base + ["--seed", "2"], dest, random.Random(153), 4, REPO)


@pytest.mark.slow
def test_kill_bench_and_resume(grid, tmp_path, capsys):
    net, routes = grid
    dest = tmp_path / "bench"

    def config(name: str, seeds: list[int]) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "name": name, "duration": 300, "seeds": seeds, "baseline": "fixed",
            "controllers": ["fixed", "max_pressure"],
            "scenarios": [{"network": str(net), "routes": [str(routes)]}]}))
        return path

    first, again = config("first", [1]), config("again", [1, 2])
    _kill_series("bench", ["bench", str(first), "--out", str(dest), "--workers", "2", "--no-progress"],
                 ["bench", str(again), "--out", str(dest), "--workers", "2", "--no-progress"], dest,
                 random.Random(154), 5, REPO,
                 finish=["bench", str(again), "--out", str(dest), "--workers", "2", "--no-progress", "--resume"])
    # the last, complete run resumed from what the killed ones finished (and the first run's rows)
    summary = (dest / "summary.md").read_text()
    assert "reused 4 of 4 rows" in summary  # the last complete run's rows, same contents and code


@pytest.mark.slow
def test_kill_train(grid, tmp_path):
    """Kills during env workers, evaluation workers and the export; the export is a whole set."""
    net, routes = grid
    export = tmp_path / "models" / "grid_tiny"

    def config(run: str) -> Path:
        path = tmp_path / f"{run}.yaml"
        path.write_text(yaml.safe_dump({
            "name": "grid_tiny", "mode": "shared",
            "env": {"network": str(net), "routes": [str(routes)], "period": None, "duration": 60},
            "algorithm": {"name": "MaskablePPO", "hyperparameters": {"n_steps": 8, "batch_size": 32, "n_epochs": 2},
                          "policy_kwargs": {"net_arch": [16, 16]}},
            "total_timesteps": 128, "n_envs": 2, "seed": 3,
            "eval": {"every": 64, "seeds": [150001], "duration": 60, "jobs": 2, "baseline": None},
            "checkpoint": {"every": 64, "keep": 2}, "output": str(tmp_path / run), "export": str(export)}))
        return path

    zip_, meta = export.with_suffix(".zip"), export.with_name(export.name + ".meta.json")

    def whole(base: Path) -> bool:
        z, m = base.with_suffix(".zip"), base.with_name(base.name + ".meta.json")
        if not m.exists():  # killed between the seal's removal and its return: completed on the next read
            assert recover_file_set(m), f"{m}: missing and no committed set to complete it"
        return json.loads(m.read_text())["artefact"]["files"][z.name] == sha256_file(z)

    t0 = time.perf_counter()
    done = _kill_at(["train", str(config("run0")), "--quiet"], 600, REPO)
    span = time.perf_counter() - t0
    assert done["rc"] == 0 and whole(export), done["stderr"]
    rng = random.Random(155)
    killed, k = 0, 0
    while killed < 3 and k < 8:
        k += 1
        delay = rng.uniform(0.1, 0.97) * span
        before = sha256_file(zip_), meta.read_text()
        t0 = time.perf_counter()
        result = _kill_at(["train", str(config(f"run{k}")), "--quiet"], delay, REPO)
        killed += result["killed"]
        if not result["killed"]:
            span = min(span, time.perf_counter() - t0)
        assert result["survivors"] == [], f"train: processes of the killed run survive: {result['survivors']}"
        assert whole(export), f"train export mixed after a kill at {delay:.2f} s"
        run = tmp_path / f"run{k}"
        if (run / "model.zip").exists() or (run / "model.meta.json").exists():
            assert whole(run / "model")
        same = (sha256_file(zip_), meta.read_text()) == before
        KILLS.append({"command": "train", "delay_s": round(delay, 2), "killed": result["killed"],
                      "destination": "previous export" if same else "new export",
                      "left beside it": ", ".join(sorted(p.name for p in export.parent.iterdir()
                                                         if p not in (zip_, meta))) or "-",
                      "survivors": 0})
    assert killed == 3
    # a killed run resumes from its last checkpoint; its locks are recognised as stale
    resumable = next((tmp_path / f"run{n}" for n in range(1, k + 1)
                   if (tmp_path / f"run{n}" / "checkpoints" / "latest.json").is_file()
                   and not (tmp_path / f"run{n}" / MANIFEST).is_file()), None)
    if resumable is None:
        return  # every kill came before the first checkpoint or after the end
    resumed = subprocess.run(PY + ["train", str(tmp_path / f"{resumable.name}.yaml"), "--resume", "--quiet"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert whole(export) and (resumable / MANIFEST).is_file()
    assert sorted(p.name for p in export.parent.iterdir()) == ["grid_tiny.meta.json", "grid_tiny.zip"]
