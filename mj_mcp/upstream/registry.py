"""Which upstream token pays for a workspace's jobs: the operator's, or the principal's own.

A shared server may bill some principals to their own AceDataCloud token (the team file names it). A
record is followed with the token of its workspace, by whichever process follows it (the one that
submitted it, or another that took it over), so a task is always polled with the token that created
it. The token a client authenticated with is never one of these: it never goes upstream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from .client import Upstream

MAX_CLIENTS = 256  # views kept; a view is a few headers over the shared pool, so dropping one is free


class Upstreams:
    def __init__(self, default: Upstream, token_for: Callable[[str], str | None] | None = None) -> None:
        """``token_for(workspace)`` is the workspace's own upstream token, or None for the operator's."""
        self.default = default
        self._token_for = token_for or (lambda _: None)
        self._views: OrderedDict[str, Upstream] = OrderedDict()

    def for_workspace(self, workspace: str) -> Upstream:
        token = self._token_for(workspace)
        if not token:
            return self.default
        view = self._views.get(token)
        if view is None:
            view = self._views[token] = self.default.with_token(token)
            while len(self._views) > MAX_CLIENTS:
                self._views.popitem(last=False)  # a follower holding it keeps using it
        else:
            self._views.move_to_end(token)
        return view

    async def aclose(self) -> None:
        await self.default.aclose()
