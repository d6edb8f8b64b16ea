# mj-mcp as a shared HTTP server: slim, non-root, with a healthcheck.
#   docker build -t mj-mcp .
#   docker run --rm mj-mcp token          # a bearer token and its hash for the team file
# It binds 0.0.0.0, which mj-mcp allows only with authentication: mount a team file
# (MJ_MCP_AUTH_TOKENS_FILE) or set MJ_MCP_OAUTH_ISSUER. See README, "Deploy for a team".

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mj_mcp ./mj_mcp
RUN python -m venv /opt/mj-mcp && /opt/mj-mcp/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
# A fixed numeric uid, so Kubernetes can check runAsNonRoot without resolving a name.
RUN useradd --system --uid 10001 --gid 0 --home-dir /data --create-home mj && chmod g+rwX /data
COPY --from=build /opt/mj-mcp /opt/mj-mcp
ENV PATH=/opt/mj-mcp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MJ_MCP_CACHE_DIR=/data/cache \
    MJ_MCP_EXPORT_DIR=/data/exports \
    MJ_MCP_STORE=sqlite:////data/mj-mcp.db
USER 10001
WORKDIR /data
EXPOSE 8000
# Liveness: the process answers HTTP. /healthz is served without authentication; an HTTP error below
# 500 still means it is up, a refused connection or a 5xx does not.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r, urllib.error as e\ntry: r.urlopen('http://127.0.0.1:8000/healthz', timeout=2)\nexcept e.HTTPError as x: raise SystemExit(x.code >= 500)"]
ENTRYPOINT ["mj-mcp"]
CMD ["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
