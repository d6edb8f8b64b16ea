"""The deployment files say what the code does: the Dockerfile, compose.yaml and its load balancer, and
the Kubernetes manifests parse, name only settings that exist, start the server with arguments the CLI
accepts, and agree with each other (ports, labels, secrets, the body limit). Docker itself is not run
here: there is no engine on the test machines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mcp import Client
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from support import ThreadedApp, free_port

from mj_mcp.cli import parser
from mj_mcp.principals import parse
from mj_mcp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_VARS = {
    info.json_schema_extra["env"] for info in Settings.model_fields.values() if isinstance(info.json_schema_extra, dict)
}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def accepted_by_the_cli(args: list[str]) -> None:
    """``args`` parse as an mj-mcp command line (argparse exits on anything it does not accept)."""
    assert parser().parse_args(args).command in {"serve", "sim", "token", "demo"}


def test_the_image_is_slim_non_root_and_starts_the_authenticated_http_server():
    steps = dockerfile()
    assert [arg.split()[0] for op, arg in steps if op == "FROM"] == ["python:3.11-slim"] * 2
    user = [arg for op, arg in steps if op == "USER"][-1]
    assert user.isdigit() and int(user) != 0
    entry = json.loads(next(arg for op, arg in steps if op == "ENTRYPOINT"))
    cmd = json.loads(next(arg for op, arg in steps if op == "CMD"))
    assert entry == ["mj-mcp"] and cmd[:3] == ["serve", "--transport", "http"]
    accepted_by_the_cli(cmd)
    port = cmd[cmd.index("--port") + 1]
    assert [arg for op, arg in steps if op == "EXPOSE"] == [port]
    assert "--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0"  # allowed with authentication only


def test_the_images_healthcheck_passes_while_the_server_answers_and_fails_otherwise():
    health = next(arg for op, arg in dockerfile() if op == "HEALTHCHECK")
    command = json.loads(health[health.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]

    def exit_code(port: int) -> int:
        code = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode

    for status, healthy in ((200, True), (404, True), (503, False)):  # 404: up, before /healthz existed
        app = Starlette(routes=[Route("/healthz", lambda request, s=status: Response("", status_code=s))])
        with ThreadedApp(app) as served:
            assert (exit_code(int(served.base_url.rsplit(":", 1)[1])) == 0) is healthy, status
    assert exit_code(free_port()) != 0  # nothing listens


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_two_replicas_on_redis_behind_one_port_pinned_by_client_address():
    services = compose()["services"]
    assert {"mj1", "mj2", "redis", "sim", "lb"} <= set(services)
    mj1, mj2 = services["mj1"], services["mj2"]
    assert mj1 == mj2 and mj1["environment"]["MJ_MCP_STORE"].startswith("redis://redis:")
    assert [name for name, s in services.items() if s.get("ports")] == ["lb"]  # one port, the balancer's
    assert len(services["lb"]["ports"]) == 1 and str(services["lb"]["ports"][0]).endswith(":8000")
    team = mj1["environment"]["MJ_MCP_AUTH_TOKENS_FILE"]
    [mount] = [v for v in mj1["volumes"] if v["target"] == team]  # the team file is mounted where it is read
    assert mount["type"] == "bind" and mount["source"] == "./team.toml" and mount["read_only"] is True
    assert mj1["read_only"] is True and mj1["cap_drop"] == ["ALL"]
    accepted_by_the_cli(services["sim"]["command"])
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream mj_mcp \{(.*?)\}", nginx, re.S).group(1)
    assert re.findall(r"server (mj\d):8000;", upstream) == ["mj1", "mj2"]
    assert re.search(r"^\s*ip_hash;", upstream, re.M)  # a handshake-era session stays on its replica
    assert "listen 8000;" in nginx and "proxy_buffering off;" in nginx  # progress streams as it comes
    assert re.search(r"~\^/callbacks/ 0;", nginx) and "if=$loggable;" in nginx  # no callback secret in its log
    from mj_mcp.server.http import MAX_BODY_BYTES

    size = int(re.search(r"client_max_body_size (\d+)m;", nginx).group(1)) << 20
    assert size >= MAX_BODY_BYTES  # the largest mask gets through the balancer too


def test_compose_without_team_toml_stops_naming_it_instead_of_mounting_a_directory(tmp_path):
    """Without team.toml, the short volume syntax made Docker create a directory in its place and the
    replicas failed. The long form with create_host_path false makes `docker compose up` stop at once
    ("bind source path does not exist: .../team.toml"); and a replica handed a directory anyway (an
    older Compose, another orchestrator) stops before serving, saying what to do."""
    mj1 = compose()["services"]["mj1"]
    [mount] = [v for v in mj1["volumes"] if isinstance(v, dict) and v["source"] == "./team.toml"]
    assert mount["bind"]["create_host_path"] is False
    assert not [v for v in mj1["volumes"] if isinstance(v, str) and "team.toml" in v]  # no short form left
    standin = tmp_path / "team.toml"
    standin.mkdir()  # what Docker made
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "MJ_MCP_CACHE_DIR", "MJ_MCP_STORE", "MJ_MCP_EXPORT_DIR")
    }
    env["MJ_MCP_AUTH_TOKENS_FILE"] = str(standin)
    cmd = json.loads(next(arg for op, arg in dockerfile() if op == "CMD"))  # the image's own command line
    proc = subprocess.run(
        [sys.executable, "-m", "mj_mcp", *cmd[: cmd.index("--port") + 1], str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    said = proc.stderr.strip().splitlines()[-1]
    assert said.startswith(f"mj-mcp: MJ_MCP_AUTH_TOKENS_FILE={standin}: is a directory"), said
    assert "create the file" in said and "Traceback" not in proc.stderr


def kubernetes() -> dict[str, dict]:
    docs = {}
    for path in sorted((ROOT / "manifests" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_the_kubernetes_manifests_agree_with_each_other_and_the_image():
    k = kubernetes()
    listed = yaml.safe_load((ROOT / "manifests" / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in (ROOT / "manifests" / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    deployment, service, secret, config = k["Deployment"], k["Service"], k["Secret"], k["ConfigMap"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"  # as nginx's ip_hash in compose: see the README
    [container] = pod["spec"]["containers"]
    accepted_by_the_cli(container["args"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    uid = [arg for op, arg in dockerfile() if op == "USER"][-1]
    assert str(pod["spec"]["securityContext"]["runAsUser"]) == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = container["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert str(port["containerPort"]) == container["args"][container["args"].index("--port") + 1]
    for env in container["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], ref
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    [team] = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    assert team["configMap"]["name"] == config["metadata"]["name"]
    path = next(e["value"] for e in container["env"] if e["name"] == "MJ_MCP_AUTH_TOKENS_FILE")
    assert path == f"{mounts[team['name']]}/{next(iter(config['data']))}"
    from mj_mcp.limits import Limits

    parse(next(iter(config["data"].values())).encode(), json_format=False, defaults=Limits(1, 1), env={})


def test_every_variable_the_deployment_files_set_is_a_setting():
    """A misspelt variable would be ignored silently: each MJ_MCP_* / ACEDATACLOUD_* one must exist."""
    texts = [
        (ROOT / "compose.yaml").read_text(),
        (ROOT / "Dockerfile").read_text(),
        *(p.read_text() for p in (ROOT / "manifests" / "k8s").glob("*.yaml")),
    ]
    used = {v for text in texts for v in re.findall(r"\b((?:MJ_MCP|ACEDATACLOUD)_[A-Z_]+)\b", text)}
    assert used and used <= SETTINGS_VARS, used - SETTINGS_VARS


@pytest.mark.anyio
async def test_without_a_token_the_replicas_share_one_standalone_simulator(fresh_sim, tmp_path):
    """compose.yaml's default: MJ_MCP_SIM_URL instead of a simulator per replica, and results say so."""
    from mj_mcp.server import build_server
    from mj_mcp.sim import SimConfig

    fresh_sim.state.reset(SimConfig(tokens=["test-token"], time_scale=0.01))  # a standalone sim's token
    env = {
        "MJ_MCP_SIM_URL": fresh_sim.base_url,
        "MJ_MCP_STORE": "memory",
        "MJ_MCP_PREVIEW": "off",
        "MJ_MCP_CACHE_DIR": str(tmp_path / "cache"),
        "MJ_MCP_EXPORT_DIR": str(tmp_path / "exports"),
    }
    settings = Settings.from_env(env)
    assert settings.simulate and not settings.embed_sim and settings.base_url == fresh_sim.base_url
    async with Client(build_server(settings)) as client:
        made = await client.call_tool("imagine", {"prompt": "a shared moon", "wait_seconds": 30})
    assert made.structured_content["status"] == "completed" and made.structured_content["simulated"] is True
    assert made.content[0].text.startswith("[simulated]") and len(fresh_sim.state.requests("/midjourney/imagine")) == 1
