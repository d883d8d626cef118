"""The signal model read from tlLogic, and the SignalController's timing rules."""

from __future__ import annotations

from engine.signal_controller import SignalController
from engine.network import read_intersections
from engine.signals import GREEN


def test_grid_program_is_read_with_its_clearances(grid):
    net, _ = grid
    ixs = read_intersections(net)
    assert sorted(ixs) == ["A0", "A1", "B0", "B1"]
    ix = ixs["A0"]
    assert ix.n_phases == 2
    assert ix.min_yellow == 3.0 and ix.longest_all_red == 2.0
    # the file's own clearance after green 0, kept exactly: yellow then all-red
    steps = ix.clearance(0, 1)
    assert steps == ix.file_clearance(0)
    assert [d for _, d in steps] == [3.0, 2.0]
    assert all(c in "yr" for c in steps[0][0]) and set(steps[1][0]) <= set("rs")
    assert ix.clearance(0, 0) == ()
    # movements know their lanes; every conflict pair is a real junction foe never green together
    assert {m.from_lane for m in ix.movements} == set(ix.in_lanes)
    assert ix.conflicts
    for a, b in ix.conflicts:
        assert not any(ph.state[a] in GREEN and ph.state[b] in GREEN for ph in ix.phases)


def test_corridor_transitions_out_of_cycle_order_get_the_same_clearance_shape():
    ix = read_intersections(_corridor())["C1"]
    assert ix.n_phases == 4
    for i in range(4):
        for j in range(4):
            if i == j:
                continue
            steps = ix.clearance(i, j)
            assert [d for _, d in steps] == [3.0, 2.0], (i, j)
            yellow, red = steps[0][0], steps[1][0]
            a, b = ix.phases[i].state, ix.phases[j].state
            for L in range(len(a)):
                if a[L] in GREEN and b[L] not in GREEN:
                    assert yellow[L] == "y" and red[L] in "rs"  # s: right turn on red
                if a[L] not in GREEN:
                    assert yellow[L] not in GREEN and red[L] not in GREEN


def _corridor():
    import networks

    return networks.resolve("chongqing") / "corridor.net.xml"


class Recorder:
    def __init__(self):
        self.log: list[tuple[float, str, str]] = []
        self.now = 0.0

    def __call__(self, tls: str, state: str) -> None:
        self.log.append((self.now, tls, state))


def test_controller_holds_min_green_runs_clearance_and_forces_max_green(grid):
    net, _ = grid
    ix = read_intersections(net)["A0"]
    rec = Recorder()
    ctl = SignalController([ix], rec, min_green=10, max_green=30)
    ctl.reset(0.0)
    ctl.request(5.0, [1])  # too early: ignored
    assert ctl.phase[0] == 0 and len(rec.log) == 1
    rec.now = 12.0
    ctl.request(12.0, [1])  # allowed: yellow now, all-red at 15, green 1 at 17
    assert rec.log[-1][2] == ix.clearance(0, 1)[0][0]
    assert ctl.clearing(12.0)[0] and not ctl.can_switch(16.0)[0]
    for t in range(13, 18):
        rec.now = float(t)
        ctl.tick(float(t))
    assert [t for t, _, _ in rec.log[1:]] == [12.0, 15.0, 17.0]
    assert rec.log[-1][2] == ix.phases[1].state
    ctl.request(20.0, [0])  # min green of the new phase not yet held
    assert ctl.phase[0] == 1
    for t in range(18, 48):  # nobody asks: max green ends phase 1 at 17 + 30
        rec.now = float(t)
        ctl.tick(float(t))
    assert rec.log[-1][0] == 47.0 and ctl.phase[0] == 0
