"""Progress arithmetic: strictly increasing, never ahead of upstream, 100 only at the end."""

from __future__ import annotations

from mj_mcp.core.progress import ProgressMeter


def test_heartbeats_creep_below_one_point_above_upstream():
    m = ProgressMeter()
    values = [m.heartbeat() for _ in range(100_000)]  # three days of a queue, a heartbeat every 3 s
    assert values == sorted(set(values)) and values[-1] < 1.0
    assert m.upstream(35) == 35
    beats = [m.heartbeat() for _ in range(100)]
    assert beats == sorted(set(beats)) and 35 < beats[-1] < 36


def test_upstream_figures_pass_through_until_the_end():
    m = ProgressMeter()
    seen = [m.upstream(p) for p in (0, 35, 35, 20, 75, 100)]
    assert seen == sorted(set(seen))  # a repeat or a step back still moves forward, by a hair
    assert seen[-1] == 99.0  # 100 belongs to the final line only
    assert m.upstream(100, final=True) == 100


def test_joining_late_starts_where_upstream_is():
    m = ProgressMeter()
    assert m.upstream(75) == 75
    assert 75 < m.heartbeat() < 76
