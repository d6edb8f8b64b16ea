"""Command line: ``mj-mcp [serve]``, ``mj-mcp sim``, ``mj-mcp demo``, ``mj-mcp token``."""

from __future__ import annotations

import argparse
import sys

from .settings import Settings


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mj-mcp", description="Midjourney (AceDataCloud) as an MCP server.")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve MCP (the default): stdio, or streamable HTTP")
    serve.add_argument("--sim", action="store_true", help="use the embedded simulator even if a token is set")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    sim = sub.add_parser("sim", help="run the upstream simulator as a standalone HTTP server")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8787)
    sim.add_argument("--time-scale", type=float, default=1.0, help="1.0 = real pacing; 0.1 = ten times faster")
    sim.add_argument(
        "--allow-fetch",
        action="store_true",
        help="fetch image-prompt and mask URLs from public hosts (default: draw a placeholder)",
    )
    sim.add_argument(
        "--control-secret",
        default=None,
        help="the control API (/__fake/...) answers only requests carrying it in x-sim-secret",
    )
    demo = sub.add_parser("demo", help="a scripted tour through a real MCP client session, on the simulator")
    demo.add_argument("--out", default="mj-demo", help="where the final PNGs go (default ./mj-demo)")
    sub.add_parser("token", help="make a bearer token for the team file: prints the token and its hash")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    command = args.command or "serve"
    if command == "sim":
        from .sim import SimConfig, run

        config = SimConfig(
            time_scale=args.time_scale, fetch_foreign=args.allow_fetch, control_secret=args.control_secret
        )
        run(host=args.host, port=args.port, config=config)
        return 0
    if command == "token":
        import secrets

        from .principals import token_hash

        token = secrets.token_urlsafe(32)  # 256 random bits: why an unsalted hash is enough
        print(
            f"token: {token}\n  give it to its holder once; it is not kept anywhere\n"
            f"hash:  {token_hash(token)}\n  put it in the holder's tokens = [...] in MJ_MCP_AUTH_TOKENS_FILE"
        )
        return 0
    if command == "demo":
        import anyio

        from .demo import tour

        return anyio.run(tour, args.out)

    import anyio

    from .errors import SettingsError, StoreError
    from .server import build_server, configure_logging
    from .server.http import check_bind, serve_http
    from .store import check_store

    transport = getattr(args, "transport", "stdio")
    try:
        settings = Settings.from_env(force_sim=getattr(args, "sim", False))
        if transport == "http":
            check_bind(args.host, settings)
        elif settings.public_url:
            raise SettingsError(
                "MJ_MCP_PUBLIC_URL (callback mode) needs --transport http: upstream's callbacks "
                "arrive as HTTP requests",
                next_step="Unset it, or serve over HTTP.",
            )
        configure_logging(settings.log_level)
        server = build_server(settings)  # reads the team file, if any
        anyio.run(check_store, settings.store_url)
    except (SettingsError, StoreError) as exc:
        print(f"mj-mcp: {exc}", file=sys.stderr)  # before any protocol: a host shows this in its log
        return 2
    if transport == "http":
        serve_http(server, settings, args.host, args.port)
    else:
        from .stdio import DEFAULT_MAX_MESSAGE_BYTES, serve_stdio

        anyio.run(serve_stdio, server, DEFAULT_MAX_MESSAGE_BYTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
