"""A server shared by a team: who may call, as whom, billed to which token, within which limits.

Real parts only: one mj-mcp HTTP server process for the module, with a team file (static tokens) and a
test OAuth issuer (``issuer.py``: real keys and signed JWTs, its metadata and JWKS over loopback
HTTP), against the shared simulator. Users are reached through the SDK's own HTTP client in both
protocol eras, and through raw HTTP where the status code is the point.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import jwt
import pytest
from conftest import TOKEN
from cryptography.hazmat.primitives.asymmetric import rsa
from issuer import Issuer
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ResourceTemplateReference
from support import PATIENCE, SERVER, ThreadedApp, free_port, imagine_requests, server_env, wait_for_port, wait_until

from mj_mcp.principals import token_hash
from mj_mcp.sim import SimConfig

pytestmark = pytest.mark.anyio

ALICE, BOB, BEN, DORA, ED, FAY = (secrets.token_urlsafe(32) for _ in range(6))  # static bearer tokens
ALICE_UPSTREAM = "alice-own-acedata-" + secrets.token_hex(8)  # her own AceDataCloud token
CAROL = "carol-sub-7"  # an OAuth subject the team file names
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SEEN_TOKENS: list[str] = [ALICE, BOB, BEN, DORA, ED, FAY, ALICE_UPSTREAM, TOKEN]  # none may reach a log or result


def team_file(extra: str = "") -> str:
    return (
        f"""
[principals.alice]
tokens = ["{token_hash(ALICE)}"]
upstream_token_env = "ALICE_UPSTREAM"

[principals.bob]
tokens = ["{token_hash(BOB)}"]

[principals.ben]
tokens = ["{token_hash(BEN)}"]

[principals.carol]
oauth_subject = "{CAROL}"

[principals.dora]
tokens = ["{token_hash(DORA)}"]
max_daily = 1

[principals.ed]
tokens = ["{token_hash(ED)}"]
max_running = 1
"""
        + extra
    )


@pytest.fixture(scope="module")
def issuer():
    it = Issuer()
    with ThreadedApp(it.app()) as served:
        it.url = served.base_url
        yield it


class Served:
    def __init__(self, port: int, log: Path, team: Path, issuer: Issuer) -> None:
        self.port, self.log, self.team, self.issuer = port, log, team, issuer
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"

    def jwt(self, sub: str = CAROL, **kw) -> str:
        token = self.issuer.mint(sub, aud=kw.pop("aud", self.url), **kw)
        SEEN_TOKENS.append(token)
        return token


@pytest.fixture(scope="module")
def server(sim, issuer, tmp_path_factory):
    base = tmp_path_factory.mktemp("team")
    team, log = base / "team.toml", base / "server.log"
    team.write_text(team_file())
    port = free_port()
    env = server_env(
        sim,
        MJ_MCP_AUTH_TOKENS_FILE=str(team),
        MJ_MCP_OAUTH_ISSUER=issuer.url,
        MJ_MCP_RESOURCE_URL=f"http://127.0.0.1:{port}/mcp",
        MJ_MCP_OAUTH_SCOPES="mj",
        ALICE_UPSTREAM=ALICE_UPSTREAM,
        MJ_MCP_LOG_LEVEL="DEBUG",
        MJ_MCP_PREVIEW="off",
    )
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*SERVER, "--transport", "http", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    wait_for_port(port)
    yield Served(port, log, team, issuer)
    proc.terminate()
    proc.wait(timeout=PATIENCE)


@pytest.fixture
def team_sim(fresh_sim):
    """The simulator accepting the operator's token and Alice's own: any other token is refused (401)."""
    fresh_sim.state.reset(SimConfig(tokens=[TOKEN, ALICE_UPSTREAM], time_scale=0.01))
    return fresh_sim


@asynccontextmanager
async def connect(server: Served, token: str, mode: str = "auto"):
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(server.url, http_client=http), mode=mode) as client:
        yield client


def no_secret_in(result) -> None:
    text = result.model_dump_json()
    assert not [t for t in SEEN_TOKENS if t in text], "a token reached a result"


async def call(client, tool, **args):
    result = await client.call_tool(tool, args)
    no_secret_in(result)
    return result


def post(server: Served, token: str | None, body=INIT, **headers):
    auth = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(server.url, json=body, headers={**ACCEPT, **auth, **headers}, timeout=30)


# --- who may call ------------------------------------------------------------------------------


def test_no_token_a_bad_signature_another_audience_or_an_expiry_is_401_a_missing_scope_403(server):
    metadata = f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"'
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "no token": None,
        "not a token": "not-a-token",
        "an unknown static token": secrets.token_urlsafe(32),
        "a bad signature": server.jwt(key=other_key),  # signed by another key, under the issuer's kid
        "another audience": server.jwt(aud="http://127.0.0.1:1/mcp"),
        "an expired token": server.jwt(lifetime=-120),  # beyond the 30 s leeway
        "another issuer": server.jwt(iss="http://127.0.0.1:1"),
        "alg none": jwt.encode(
            {"iss": server.issuer.url, "sub": CAROL, "aud": server.url, "exp": int(time.time()) + 300, "scope": "mj"},
            None,
            algorithm="none",
        ),
    }
    for why, token in refused.items():
        reply = post(server, token)
        assert reply.status_code == 401, why
        assert reply.headers["www-authenticate"].startswith("Bearer ") and metadata in reply.headers["www-authenticate"]
    no_scope = post(server, server.jwt(scope="profile"))
    assert no_scope.status_code == 403 and 'error="insufficient_scope"' in no_scope.headers["www-authenticate"]
    for token in (server.jwt(), server.jwt("someone-else"), ALICE):  # a subject the file does not name: its own
        assert post(server, token).status_code == 200


def test_a_token_within_the_clock_skew_is_accepted_on_both_sides_of_its_lifetime(server):
    """The README promises 30 s of clock skew: a token that expired a second ago by this server's clock,
    or whose nbf is 10 s ahead of it, is accepted; one that expired two minutes ago is not. (A second,
    not more: the request has the rest of the 30 s to arrive, however busy the machine.)"""
    now = int(time.time())
    assert post(server, server.jwt(lifetime=-1)).status_code == 200  # its issuer's clock is behind ours
    assert post(server, server.jwt(nbf=now + 10)).status_code == 200  # its issuer's clock is ahead of ours
    assert post(server, server.jwt(lifetime=-120)).status_code == 401


def test_the_protected_resource_metadata_names_the_issuer(server):
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        doc = httpx.get(server.base + path, timeout=PATIENCE).json()
        assert doc["resource"] == server.url and doc["authorization_servers"] == [server.issuer.url], path
        assert doc["scopes_supported"] == ["mj"]


def test_a_session_answers_only_the_principal_that_opened_it(server):
    opened = post(server, ALICE)
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert post(server, BOB, listing, **{"mcp-session-id": session}).status_code == 404
    assert post(server, ALICE, listing, **{"mcp-session-id": session}).status_code == 200


def test_host_and_origin_are_checked_for_an_authenticated_caller_too(server):
    assert post(server, ALICE, host="evil.example").status_code == 421
    assert post(server, ALICE, origin="http://evil.example").status_code == 403


def test_a_body_as_large_as_the_largest_mask_fits_and_a_larger_one_is_413(server):
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "inpaint_region", "arguments": {"image": "nothing-here", "mask": "A" * (10 << 20)}},
    }
    session = post(server, ALICE).headers["mcp-session-id"]
    fits = post(server, ALICE, call, **{"mcp-session-id": session})
    assert fits.status_code == 200 and "nothing-here" in fits.text  # reached the tool: an unknown image
    call["params"]["arguments"]["mask"] = "A" * (13 << 20)
    assert post(server, ALICE, call, **{"mcp-session-id": session}).status_code == 413


def test_the_team_file_is_reloaded_when_it_changes(server):
    def status(token):
        return post(server, token).status_code

    def eventually(token, code):
        wait_until(lambda: status(token) == code, f"the token to get {code}", interval=0.2)

    assert status(FAY) == 401
    try:
        server.team.write_text(team_file(f'\n[principals.fay]\ntokens = ["{token_hash(FAY)}"]\n'))
        eventually(FAY, 200)
        server.team.write_text("[principals.fay]\ntokens = ['" + FAY + "']\n")  # a plain token: not valid

        def refused_and_still_served():  # the file is looked at on use
            assert status(ALICE) == 200
            return "previous one stays in force" in server.log.read_text()

        wait_until(refused_and_still_served, "the server to refuse the bad file", interval=0.2)
        assert status(FAY) == 200 and status(ALICE) == 200  # the last good file stays in force
    finally:
        server.team.write_text(team_file())
    eventually(FAY, 401)  # a removed token stops working without a restart


def test_a_deleted_team_file_refuses_every_static_token_until_it_is_back(server):
    """Fail closed: deleting the file must not keep the last roster in force. After a grace period
    longer than any replace takes, every static token is 401 (and the log says why); OAuth is not
    affected; the file written back is used again."""

    def eventually(token, code):
        wait_until(lambda: post(server, token).status_code == code, f"the token to get {code}", interval=0.2)

    assert post(server, ALICE).status_code == 200
    server.team.unlink()
    try:
        eventually(ALICE, 401)
        assert post(server, BOB).status_code == 401
        assert post(server, server.jwt()).status_code == 200  # Carol, whom the last file named
        assert post(server, server.jwt("someone-new")).status_code == 200
        assert "every static token is refused" in server.log.read_text()
    finally:
        server.team.write_text(team_file())
    eventually(ALICE, 200)
    assert post(server, BOB).status_code == 200


# --- one user never sees another's images ------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_two_users_are_isolated_on_every_tool_and_resource(server, team_sim, mode):
    async with connect(server, server.jwt(), mode) as carol:  # OAuth
        made = (await call(carol, "imagine", prompt=f"a lighthouse at dusk {mode}", wait_seconds=30)).structured_content
        assert made["status"] == "completed", made
        single = (
            await call(carol, "apply_action", image=made["name"], action="upscale2", wait_seconds=30)
        ).structured_content
        assert single["status"] == "completed", single
    refs = [made["name"], made["image_id"], made["task_id"], single["name"], single["image_id"], single["task_id"]]
    submits = len(imagine_requests(team_sim))
    async with connect(server, {"auto": BOB, "legacy": BEN}[mode], mode) as bob:  # a static token, no images yet
        for ref in refs:
            for tool, args in [
                ("get_task", {"ref": ref}),  # by task_id: adopting another user's task is refused
                ("get_task", {"ref": ref, "wait_seconds": 1}),
                ("apply_action", {"image": ref, "action": "upscale1"}),
                ("imagine", {"prompt": "the same again", "images": [ref]}),
                ("blend", {"images": [ref, ref]}),
                ("inpaint_region", {"image": ref, "region": [{"shape": "rect", "box": [0, 0, 0.5, 0.5]}]}),
                ("export_image", {"image": ref, "path": f"taken-{mode}.png"}),
                ("list_images", {"lineage_of": ref}),
                ("view_image", {"image": ref}),  # the MCP App's picture tool
            ]:
                result = await call(bob, tool, **args)
                text = result.content[0].text
                assert result.is_error and "no image or task" in text and "No images yet" in text, (tool, ref, text)
            with pytest.raises(MCPError):
                await bob.read_resource(f"mj://images/{ref}")
        assert (await call(bob, "list_images")).structured_content["images"] == []
        assert [r.uri for r in (await bob.list_resources()).resources if str(r.uri).startswith("mj://")] == []
        template = ResourceTemplateReference(type="ref/resource", uri="mj://images/{name}")
        assert (await bob.complete(template, {"name": "name", "value": ""})).completion.values == []
        assert len(imagine_requests(team_sim)) == submits  # nothing Bob tried was sent
        mine = await call(bob, "imagine", prompt="a lighthouse of his own", name=made["name"], wait_seconds=30)
        assert not mine.is_error and mine.structured_content["task_id"] != made["task_id"]  # names are per user
    async with connect(server, server.jwt(), mode) as carol:
        hers = (await call(carol, "export_image", image=made["name"], path=f"hero-{mode}.png")).structured_content
    async with connect(server, {"auto": BOB, "legacy": BEN}[mode], mode) as bob:
        # Exports of the same path land in each user's own folder: Bob neither replaces nor sees Carol's.
        his = await call(bob, "export_image", image=made["name"], path=f"hero-{mode}.png", overwrite=True)
        assert not his.is_error and his.structured_content["path"] != hers["path"], his.content[0].text
    assert Path(hers["path"]).read_bytes() != Path(his.structured_content["path"]).read_bytes()
    async with connect(server, server.jwt(), mode) as carol:
        listed = (await call(carol, "list_images", limit=200)).structured_content["images"]
        names = [i["name"] for i in listed]
        assert made["name"] in names and single["name"] in names and len(names) == len(set(names))
        again = (await call(carol, "get_task", ref=made["name"])).structured_content
        assert again["task_id"] == made["task_id"]  # Bob's image of the same name is not hers


async def test_a_2026_listener_hears_of_its_own_users_images_only(server, team_sim):
    async with connect(server, server.jwt()) as carol, connect(server, BOB) as bob:
        assert bob.protocol_version == "2026-07-28"
        theirs, mine = "mj://images/listened-carol", "mj://images/listened-bob"
        async with (
            carol.listen(resource_subscriptions=[theirs]) as heard_by_carol,
            bob.listen(resource_subscriptions=[theirs, mine]) as heard_by_bob,
        ):
            await call(carol, "imagine", prompt="a bell", name="listened-carol", wait_seconds=30)
            with anyio.fail_after(PATIENCE):
                assert (await heard_by_carol.__anext__()).uri == theirs  # published, to her
            await call(bob, "imagine", prompt="a drum", name="listened-bob", wait_seconds=30)
            with anyio.fail_after(PATIENCE):
                assert (await heard_by_bob.__anext__()).uri == mine  # his first event is his own image's


# --- who pays, and how much --------------------------------------------------------------------


async def test_jobs_go_upstream_with_the_principals_own_token_else_the_operators(server, fresh_sim):
    fresh_sim.state.reset(SimConfig(tokens=[ALICE_UPSTREAM], time_scale=0.01))  # only Alice's own is valid
    async with connect(server, ALICE) as alice, connect(server, BOB) as bob:
        mine = await call(alice, "imagine", prompt="a paper crane", wait_seconds=30)
        assert mine.structured_content["status"] == "completed"
        theirs = await call(bob, "imagine", prompt="a paper boat", wait_seconds=30)
        assert theirs.is_error and "ACEDATACLOUD_API_TOKEN" in theirs.content[0].text  # the operator's: refused
        fresh_sim.state.reset(SimConfig(tokens=[TOKEN], time_scale=0.01))  # only the operator's is valid
        assert (await call(bob, "imagine", prompt="a paper plane", wait_seconds=30)).structured_content[
            "status"
        ] == "completed"
        assert (await call(alice, "imagine", prompt="a paper frog", wait_seconds=30)).is_error


async def test_a_daily_limit_refuses_before_sending_and_says_when_it_resets(server, team_sim):
    async with connect(server, DORA) as dora:
        assert not (await call(dora, "imagine", prompt="one a day", wait_seconds=30)).is_error
        sent = len(imagine_requests(team_sim))
        refused = await call(dora, "imagine", prompt="and another")
        text = refused.content[0].text
        assert refused.is_error and "max_daily" in text and "resets at" in text and "00:00 UTC" in text, text
        assert len(imagine_requests(team_sim)) == sent  # nothing was sent upstream
        assert "no image" in (await call(dora, "get_task", ref="another")).content[0].text  # its name was freed


async def test_a_running_limit_refuses_a_second_job_while_the_first_runs(server, team_sim):
    team_sim.state.configure(time_scale=0.5)  # a grid takes about 5 s
    async with connect(server, ED) as ed:
        first = await call(ed, "imagine", prompt="a slow glacier", wait_seconds=0)
        assert first.structured_content["status"] == "running"
        refused = await call(ed, "imagine", prompt="a second glacier")
        assert refused.is_error and "max_running" in refused.content[0].text, refused.content[0].text
        assert len(imagine_requests(team_sim)) == 1
    team_sim.state.configure(time_scale=0.01)


# --- the client's token goes nowhere ---------------------------------------------------------


def test_no_token_reaches_the_servers_log(server):
    """Last in the module: everything above ran against this server with its log at DEBUG."""
    text = server.log.read_text()
    assert "bearer token refused" in text  # the log did record the refusals, without the tokens
    leaked = [t[:12] for t in SEEN_TOKENS if t in text]
    assert not leaked, f"tokens in the server's log: {leaked}"


# --- the parts, in process ---------------------------------------------------------------------


async def test_the_issuers_keys_are_cached_refreshed_for_a_new_kid_and_bounded(issuer):
    from mj_mcp.server.jwks import Jwks, JwksError, fetch_json, https_or_loopback

    keys = Jwks(issuer.url, refresh_min_s=0)  # found through the issuer's metadata
    before = issuer.fetches
    assert await keys.key(issuer.kid) is not None and await keys.key(issuer.kid) is not None
    assert issuer.fetches == before + 1  # cached
    new = issuer.rotate()
    assert await keys.key(new) is not None and issuer.fetches == before + 2  # an unknown kid: fetched again
    slow = Jwks(issuer.url, f"{issuer.url}/jwks", refresh_min_s=3600)
    assert await slow.key(issuer.kid) is not None
    assert await slow.key("made-up") is None and await slow.key("made-up-2") is None
    assert issuer.fetches == before + 3  # made-up kids do not make it fetch again
    issuer.jwks_body = b'{"keys": [' + b'{"kty": "oct", "k": "c2VjcmV0"},' * 20_000 + b"{}]}"
    try:
        with pytest.raises(JwksError, match="larger than"):
            await fetch_json(f"{issuer.url}/jwks")
        issuer.jwks_body = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "shared"}]}).encode()
        assert await Jwks(issuer.url, f"{issuer.url}/jwks").key("shared") is None  # symmetric keys: never
    finally:
        issuer.jwks_body = None
    assert https_or_loopback("https://auth.example.com") and https_or_loopback("http://127.0.0.1:9")
    assert not https_or_loopback("http://auth.example.com") and not https_or_loopback("ftp://127.0.0.1")
    with pytest.raises(JwksError, match="not https"):
        await fetch_json("http://auth.example.com/jwks")


async def test_a_taken_over_job_is_polled_with_its_workspaces_token(fresh_sim, tmp_path):
    """Another process's job in Alice's workspace: whoever takes it over asks upstream with her token."""
    from conftest import settings_for
    from pydantic import SecretStr

    from mj_mcp.jobs import Jobs
    from mj_mcp.records import Record
    from mj_mcp.store import MemoryStore
    from mj_mcp.upstream import Upstream
    from mj_mcp.upstream.registry import Upstreams

    fresh_sim.state.reset(SimConfig(tokens=[ALICE_UPSTREAM], time_scale=0.05))  # the operator's is refused
    ack = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine",
        json={"prompt": "a far comet", "async": True},
        headers={"authorization": f"Bearer {ALICE_UPSTREAM}"},
        timeout=30,
    ).json()
    store = MemoryStore()
    record = Record(name="far-comet", workspace="team:alice", task_id=ack["task_id"])
    await store.add(record)
    settings = settings_for(fresh_sim, api_token=SecretStr(TOKEN))
    upstream = Upstream(settings)
    try:
        async with anyio.create_task_group() as tg:
            upstreams = Upstreams(upstream, {"team:alice": ALICE_UPSTREAM}.get)
            jobs = Jobs(upstreams, store, settings, tg)
            await jobs.get(record, catch_up_s=0)

            async def report(progress: float, message: str) -> None:
                pass

            with anyio.fail_after(PATIENCE):
                while (done := (await jobs.watch(record, 5, report)).record).status == "running":
                    pass
            tg.cancel_scope.cancel()
    finally:
        await upstream.aclose()
    assert done.status == "completed" and done.image_id
    assert imagine_requests(fresh_sim) == [imagine_requests(fresh_sim)[0]]  # the one submit above, never another
