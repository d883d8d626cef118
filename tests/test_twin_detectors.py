"""The field's loop detectors and the counts feed (engine.twin.detectors): SUMO's own E1 output
round-trips through the feed CSV that calibrate reads, and a growing file is read whole lines only."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

from engine.calibrate.counts import read_counts
from engine.errors import ConfigError
from engine.network import load_network
from engine.sim import sumo_binary
from engine.twin.detectors import CountsFeed, append_counts, loop_counts, loops_xml, place_loops


@pytest.fixture(scope="module")
def field_run(grid, tmp_path_factory):
    """The grid for 900 s with a loop on every approach and exit lane, counted every 300 s."""
    net, routes = grid
    tmp = tmp_path_factory.mktemp("field")
    model = load_network(net)
    loops = place_loops(model.net, model.signals)
    add = tmp / "loops.add.xml"
    add.write_text(loops_xml(loops, "e1.xml", period_s=300))
    subprocess.run([sumo_binary("sumo"), "-n", str(net), "-r", str(routes), "-a", str(add), "--end", "900",
                    "--no-step-log", "--no-warnings"], check=True, cwd=tmp, capture_output=True)
    return model, loops, tmp / "e1.xml", tmp


def test_every_approach_and_exit_lane_has_one_loop(field_run):
    model, loops, _, _ = field_run
    lanes = {(lp.lane, lp.kind) for lp in loops}
    for ix in model.signals.values():
        assert {(lane, "approach") for lane in ix.in_lanes} <= lanes
        assert {(lane, "exit") for lane in ix.out_lanes} <= lanes
    sources = [e for e in model.net.getEdges(withInternal=False)
               if not e.getFunction() and not any(i.allows("passenger") for i in e.getIncoming())]
    entry = {(ln.getID(), "entry") for e in sources for ln in e.getLanes() if ln.allows("passenger")}
    assert entry and entry <= lanes
    for lp in loops:
        length = model.net.getLane(lp.lane).getLength()
        assert 0 < lp.pos < length


def test_feed_csv_round_trips_sumos_detector_output(field_run):
    _, loops, e1, tmp = field_run
    counts = loop_counts(e1, loops)
    feed = tmp / "feed.csv"
    append_counts(feed, counts[: len(counts) // 2])
    append_counts(feed, counts[len(counts) // 2:])
    back = read_counts(feed)  # calibrate's own reader
    # independently from SUMO's XML: vehicles per (interval, edge) over the edge's entry loops, or
    # where it has none its approach loops, or else its exit loops
    truth: dict[tuple, float] = defaultdict(float)
    kind = {lp.id: lp for lp in loops}
    kinds: dict[str, set] = defaultdict(set)
    for lp in loops:
        kinds[lp.edge].add(lp.kind)
    first = {e: next(k for k in ("entry", "approach", "exit") if k in ks) for e, ks in kinds.items()}
    for el in ET.parse(e1).getroot().iter("interval"):
        lp = kind[el.get("id")]
        if lp.kind == first[lp.edge]:
            truth[(float(el.get("begin")), float(el.get("end")), lp.lane.rsplit("_", 1)[0])] += \
                float(el.get("nVehContrib"))
    got = {(c.begin, c.end, c.edge): c.value for c in back.counts}
    assert got == dict(truth)
    assert sum(got.values()) > 100  # the grid's demand did pass
    assert {c.end - c.begin for c in back.counts} == {300.0}
    assert all(c.occupancy is not None and 0 <= c.occupancy <= 100 for c in back.counts)


def test_a_growing_feed_is_read_whole_lines_only(field_run, tmp_path):
    _, loops, e1, _ = field_run
    counts = loop_counts(e1, loops)
    whole = tmp_path / "whole.csv"
    append_counts(whole, counts)
    data = whole.read_bytes()
    live = tmp_path / "live.csv"
    feed = CountsFeed(live)
    assert feed.read() == []  # no file yet
    seen = []
    cuts = [5, 40, len(data) // 3, len(data) // 3 + 7, len(data) - 3, len(data)]
    written = 0
    for cut in cuts:  # the writer stops mid-line at every cut but the last
        with open(live, "ab") as fh:
            fh.write(data[written:cut])
        written = cut
        seen += feed.read()
    assert [(c.begin, c.end, c.edge, c.value) for c in seen] == \
           [(c.begin, c.end, c.edge, c.value) for c in counts]


def test_a_bad_row_in_the_feed_names_its_line(tmp_path):
    live = tmp_path / "live.csv"
    live.write_text("interval_start,interval_end,edge,count,occupancy\n07:00,07:05,A,12,3.5\n")
    feed = CountsFeed(live)
    assert len(feed.read()) == 1
    with open(live, "a") as fh:
        fh.write("07:05,07:10,A,12,3.5\n07:10,07:15,A,many,1\n")
    with pytest.raises(ConfigError, match=r"live\.csv:4: .*count"):
        feed.read()
