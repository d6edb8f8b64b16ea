"""Run the simulator: in a background thread with its own event loop (tests, ``serve --sim``), or in
the foreground (``mj-mcp sim``). Logs go to stderr only: stdout may be an MCP stdio channel.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from .knobs import SimConfig
from .routes import create_app
from .state import SimState

log = logging.getLogger("mj_mcp.sim")


def _bind(host: str, port: int) -> socket.socket:
    """Bind ourselves so port 0 works and the real port is known before serving.

    The explicit IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    listening socket says TCP, and without it every keep-alive reply waits ~40 ms for a delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # uvicorn's own default: a thousand clients connecting at once are queued, not reset
    sock.set_inheritable(True)
    return sock


def _uvicorn(app: Any, **extra: Any) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="off", ws="none", **extra
    )
    return uvicorn.Server(config)


def unmap_large_buffers() -> None:
    """On glibc, have every allocation of 1 MiB or more mapped on its own, and unmapped when freed.

    Pillow allocates an image in blocks of up to 16 MiB. glibc maps such a block at first, but raises
    its mapping threshold to the largest block freed (up to 32 MiB), and from then on serves them from
    the heap and the per-thread arenas, where fragmentation keeps the memory long after the images
    are gone: an embedded simulator's server held about 450 MiB more after 30 grids and 30 upscales
    (bench/embedded.py). A fixed threshold stops that rise. Process-wide, so the server's thumbnail
    decoding benefits too; elsewhere (musl, macOS, Windows) nothing is changed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3  # malloc.h
    mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(1 << 20))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimServer:
    """The simulator on a loopback port, served from a daemon thread.

    ``start()`` returns once it accepts connections; ``stop()`` cancels in-flight jobs and returns
    within about a quarter of a second. Usable as a context manager.
    """

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = create_app(config)
        self.state: SimState = self.app.state.sim
        self.host, self.port = host, port
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> SimServer:
        if self._thread is not None:
            return self
        if self.state.config.embedded:  # in a long-running server: its renders must not keep memory
            unmap_large_buffers()
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.base_url = _url(sock)
        self._server = server = _uvicorn(self.app)

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name="mj-mcp-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"simulator failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("simulator did not start within 10 s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.state.shutdown()
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(host: str = "127.0.0.1", port: int = 8787, config: SimConfig | None = None) -> None:
    """Serve in the foreground until interrupted (``mj-mcp sim``)."""
    app = create_app(config)
    sock = _bind(host, port)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg: SimConfig = app.state.sim.config
    sys.stderr.write(
        f"mj-mcp simulator listening on {_url(sock)} (time scale {cfg.time_scale}; "
        f"{'fetches' if cfg.fetch_foreign else 'does not fetch'} foreign image URLs)\n"
    )
    if cfg.control_secret is None and not _loopback(host):
        log.warning("the control API (/__fake/...) is open to anyone who reaches %s: start with --control-secret", host)
    sys.stderr.flush()
    try:
        _uvicorn(app, timeout_graceful_shutdown=1).run(sockets=[sock])
    finally:
        sock.close()
