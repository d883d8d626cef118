"""Counts reading and validation, GEH on hand-computed values, count reconciliation (no SUMO runs)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.calibrate.counts import Count, check_network, clock, parse_time, read_counts
from engine.calibrate.geh import Comparison, geh, hourly, r_squared, summarise
from engine.calibrate.reconcile import nnls, passes, reconcile
from engine.calibrate.report import geh_band
from engine.errors import ConfigError

HEADER = "interval_start,interval_end,edge,to_edge,count\n"


def write(tmp_path: Path, text: str, name: str = "counts.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------- GEH

def test_geh_hand_computed_values():
    # M = 500, C = 600 veh/h: sqrt(2 * 100^2 / 1100) = sqrt(18.1818...) = 4.2640
    assert geh(500, 600) == pytest.approx(4.26401, abs=1e-5)
    assert geh(600, 500) == pytest.approx(4.26401, abs=1e-5)  # symmetric
    # M = 0, C = 100: sqrt(2 * 100^2 / 100) = sqrt(200)
    assert geh(0, 100) == pytest.approx(math.sqrt(200))
    # M = 1000, C = 1200: sqrt(2 * 200^2 / 2200) = sqrt(36.3636...) = 6.0302
    assert geh(1000, 1200) == pytest.approx(6.03023, abs=1e-5)
    assert geh(0, 0) == 0.0


def test_geh_of_a_15_minute_count_uses_hourly_flows():
    c = Count(25200, 26100, "e", None, 150, "t:2")
    assert hourly(150, 900) == 600
    row = Comparison(c, simulated=125)
    assert (row.observed_h, row.simulated_h) == (600, 500)
    assert row.geh == pytest.approx(4.26401, abs=1e-5)
    # on the raw 15-minute numbers GEH would be half as large (and too lenient)
    assert geh(125, 150) == pytest.approx(row.geh / 2)


def test_summary_share_r2_and_verdict():
    counts = [Count(0, 900, f"e{i}", None, v, f"t:{i}") for i, v in enumerate([100, 200, 300, 400])]
    rows = [Comparison(c, s) for c, s in zip(counts, [100, 200, 300, 100])]  # last: 400 vs 1600 veh/h
    s = summarise(rows)
    assert s.n == 4 and s.n_ok == 3 and s.share == 0.75
    assert not s.passed
    assert s.verdict().startswith("FAIL: 75.0 % of 4 counts have GEH < 5")
    assert summarise(rows[:3]).passed and summarise(rows[:3]).verdict().startswith("PASS")
    assert r_squared([1, 2, 3], [1, 2, 3]) == 1.0
    assert r_squared([1, 2, 3], [2, 2, 2]) == pytest.approx(0.0)  # 1 - 2/2


def test_geh_band_is_where_geh_is_five():
    obs = np.array([10.0, 300.0, 1500.0])
    low, high = geh_band(obs)
    for o, lo, hi in zip(obs, low, high):
        assert geh(hi, o) == pytest.approx(5.0)
        if lo > 0:
            assert geh(lo, o) == pytest.approx(5.0)


# ----------------------------------------------------------------------------- reading

def test_csv_with_clock_times_seconds_turns_and_comments(tmp_path):
    p = write(tmp_path, "# synthetic\n" + HEADER + "07:00,07:15,a,,120\n"
              "25200,26100,a,b,30\n" "07:15:00,07:30,a,,98.5\n")
    cs = read_counts(p)
    assert [c.location for c in cs.counts] == ["a", "a>b", "a"]
    assert cs.counts[0].begin == 25200 and cs.counts[0].end == 26100 and cs.counts[0].kind == "edge"
    assert cs.counts[1].kind == "turn" and cs.counts[1].value == 30
    assert cs.counts[2].value == 98.5
    assert cs.counts[0].row == f"{p}:3"
    assert (cs.begin, cs.end) == (25200, 27000)
    assert [c.location for c in cs.window(25200, 26100).counts] == ["a", "a>b"]


def test_csv_without_to_edge_column(tmp_path):
    cs = read_counts(write(tmp_path, "interval_start,interval_end,edge,count\n0,900,a,5\n"))
    assert cs.counts[0].to_edge is None and cs.counts[0].value == 5


def test_sumo_xml_edgedata_and_edgerelation(tmp_path):
    p = write(tmp_path, """<data>
  <interval id="x" begin="0" end="900">
    <edge id="a" entered="40" left="39"/>
    <edgeRelation from="a" to="b" count="12"/>
  </interval>
  <interval begin="900" end="1800">
    <edge id="a" entered="44"/>
  </interval>
</data>""", "counts.xml")
    cs = read_counts(p)
    assert [(c.begin, c.end, c.location, c.value) for c in cs.counts] == [
        (0, 900, "a", 40), (0, 900, "a>b", 12), (900, 1800, "a", 44)]
    assert cs.counts[1].row == f"{p}:4"
    with pytest.raises(ConfigError, match=r"counts.xml:7: <edge> has no 'left' attribute"):
        read_counts(p, edge_attribute="left")


def test_time_parsing_and_clock():
    assert parse_time("07:00", "x") == 25200
    assert parse_time("7:00:30", "x") == 25230
    assert parse_time("900", "x") == 900
    assert clock(25200) == "07:00" and clock(25230) == "07:00:30"
    with pytest.raises(ConfigError, match="neither seconds nor HH:MM"):
        parse_time("7h00", "x")


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("rows, message", [
    ("07:00,07:15,a,,-3\n", r"counts.csv:2: count -3 is negative"),
    ("07:00,07:15,a,,\n", r"counts.csv:2: count is missing"),
    ("07:00,07:15,a,,many\n", r"counts.csv:2: count 'many' is not a number"),
    ("07:00,07:15,a,,nan\n", r"counts.csv:2: count 'nan' is not a number"),
    ("07:15,07:00,a,,3\n", r"counts.csv:2: interval_end 07:00 is not after interval_start 07:15"),
    ("7h,07:15,a,,3\n", r"counts.csv:2: interval_start: time '7h' is neither"),
    ("07:00,07:15,,,3\n", r"counts.csv:2: edge is missing"),
    ("07:00,07:15,a,3\n", r"counts.csv:2: 4 fields, the header has 5"),
    ("07:00,07:15,a,,3\n07:10,07:25,a,,4\n",
     r"counts.csv:3: interval 07:10-07:25 at a overlaps 07:00-07:15 of .*counts.csv:2"),
    ("07:00,07:15,a,b,3\n07:00,07:15,a,b,4\n", r"counts.csv:3: interval 07:00-07:15 at a>b repeats"),
])
def test_bad_rows_name_the_row(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message) as err:
        read_counts(write(tmp_path, HEADER + rows))
    assert "\n" not in str(err.value)


def test_same_interval_at_different_locations_is_not_an_overlap(tmp_path):
    cs = read_counts(write(tmp_path, HEADER + "07:00,07:15,a,,3\n07:00,07:15,a,b,1\n07:00,07:15,b,,2\n"))
    assert len(cs.counts) == 3


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a counts file"),
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U\xd7\xbf", "not a counts file"),
    (b'{"counts": [1, 2, 3]}\n', r"counts.csv:1: not a counts CSV: header needs columns"),
    (b"time;edge;count\n07:00;a;3\n", r"counts.csv:1: not a counts CSV"),
    (b"", "no counts in file"),
    (b"interval_start,interval_end,edge,count,lane\n", "unknown column 'lane'"),
    (b"<data><interval begin='0' end='900'><edge id='a' entered='3'></interval></data>",
     r"counts.csv:1: not valid XML"),
    (b"<data>\n<interval begin='0' end='900'>\n<edge id='a' left='3'/>\n</interval></data>",
     r"counts.csv:3: <edge> has no 'entered' attribute"),
    (b"<data>\n<edge id='a' entered='3'/>\n</data>", r"counts.csv:2: <edge> outside an <interval>"),
    (b"<data><interval begin='0' end='900'>\n<edgeRelation from='a' count='3'/></interval></data>",
     r"counts.csv:2: <edgeRelation> needs from and to"),
])
def test_files_that_are_not_counts(tmp_path, content, message):
    p = tmp_path / "counts.csv"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_counts(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read counts file"):
        read_counts(tmp_path / "nope.csv")


def test_edges_that_do_not_exist_name_the_row(tmp_path):
    cs = read_counts(write(tmp_path, HEADER + "07:00,07:15,a,,3\n07:00,07:15,a,zz,1\n"))
    with pytest.raises(ConfigError, match=r"counts.csv:3: edge 'zz' does not exist in the network"):
        check_network(cs, {"a", "b"})
    check_network(cs, {"a", "zz"})


# ----------------------------------------------------------------------------- reconciliation

def test_reconcile_keeps_consistent_counts_and_balances_inconsistent_ones():
    routes = [("a", "b"), ("a", "c")]
    consistent = [Count(0, 900, "a", None, 100, "r"), Count(0, 900, "a", "b", 60, "r"),
                  Count(0, 900, "a", "c", 40, "r")]
    fitted = reconcile(consistent, routes)
    assert [round(fitted[c], 3) for c in consistent] == [100, 60, 40]
    noisy = [Count(0, 900, "a", None, 90, "r"), Count(0, 900, "a", "b", 60, "r"),
             Count(0, 900, "a", "c", 40, "r")]
    fitted = reconcile(noisy, routes)
    a, ab, ac = (fitted[c] for c in noisy)
    assert a == pytest.approx(ab + ac)       # flows are conserved after reconciliation
    assert 90 < a < 100 and ab < 60 and ac < 40  # and lie between the disagreeing counts


def test_reconcile_gives_up_on_staggered_intervals():
    counts = [Count(0, 900, "a", None, 5, "r"), Count(300, 1200, "b", None, 5, "r")]
    assert reconcile(counts, [("a", "b")]) is None


def test_nnls_is_non_negative_and_exact_when_possible():
    a = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    x_true = np.array([3.0, 0.0, 5.0])
    x = nnls(a, a @ x_true)
    assert np.allclose(a @ x, a @ x_true, atol=1e-4) and (x >= 0).all()
    assert (nnls(a, np.array([-1.0, -2.0, -3.0])) == 0).all()
    assert passes([Count(0, 1, "b", "c", 1, "r")], [("a", "b", "c"), ("b", "a")]).tolist() == [[1.0, 0.0]]
