"""Progress arithmetic: upstream's sparse figures and heartbeats onto one strictly increasing 0-100 scale."""

from __future__ import annotations

MIN_STEP = 1e-12  # the least a report moves: progress must increase with every notification


class ProgressMeter:
    """Maps upstream progress and heartbeats onto one strictly increasing 0-100 scale.

    Upstream jumps (0, 35, 75, 100) with long silences between. A heartbeat must increase, yet must
    not claim progress upstream has not made: after the n-th heartbeat since upstream last spoke, the
    figure is n/(n+1) of the way to one point above upstream's last figure. So a queue of any length
    shows under 1%, then 35 when upstream says 35, and every heartbeat still moves.
    """

    total = 100.0

    def __init__(self) -> None:
        self.value = 0.0
        self.upstream_seen = 0.0
        self._base = 0.0  # the figure when upstream last spoke
        self._beats = 0  # heartbeats since then

    def _advance(self, to: float) -> float:
        self.value = max(to, self.value + MIN_STEP)
        return self.value

    def upstream(self, progress: float, final: bool = False) -> float:
        self.upstream_seen = max(self.upstream_seen, progress)
        self._beats = 0
        self._base = self._advance(100.0 if final else min(progress, 99.0))
        return self._base

    def heartbeat(self) -> float:
        self._beats += 1
        room = min(self.upstream_seen + 1.0, 99.5) - self._base
        return self._advance(self._base + room * self._beats / (self._beats + 1))
