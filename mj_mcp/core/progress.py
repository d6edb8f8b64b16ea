"""Progress arithmetic: upstream's sparse figures and heartbeats onto one strictly increasing 0-100 scale."""

from __future__ import annotations


class ProgressMeter:
    """Maps upstream progress and heartbeats onto one strictly increasing 0-100 scale.

    Upstream jumps (0, 35, 75, 100) with long silences between. A heartbeat must increase, yet must
    not claim progress upstream has not made, so it creeps halfway towards one point above the last
    upstream figure: a queue of any length shows under 1%, then 35 when upstream says 35.
    """

    total = 100.0

    def __init__(self) -> None:
        self.value = 0.0
        self.upstream_seen = 0.0

    def _advance(self, to: float) -> float:
        self.value = max(to, self.value + 1e-4)
        return self.value

    def upstream(self, progress: float, final: bool = False) -> float:
        self.upstream_seen = max(self.upstream_seen, progress)
        return self._advance(100.0 if final else min(progress, 99.0))

    def heartbeat(self) -> float:
        ceiling = min(self.upstream_seen + 1.0, 99.5)
        return self._advance(self.value + (ceiling - self.value) / 2)
