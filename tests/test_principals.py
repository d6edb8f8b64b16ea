"""The team file: what it accepts, what it refuses (never quoting a token), and who a caller is."""

from __future__ import annotations

import pytest

from mj_mcp.errors import SettingsError
from mj_mcp.limits import Limits
from mj_mcp.principals import Principals, parse, token_hash
from mj_mcp.settings import Settings

DEFAULTS = Limits(running=3, daily=40)
TOKEN = "dvE3Jk0-tEsT-oNlY-9mQx2LwZr5YhA8nUcB7pKf4s"  # fixed: test ids must be the same in every xdist worker


def roster(text: str, env: dict | None = None, json_format: bool = False):
    return parse(text.encode(), json_format=json_format, defaults=DEFAULTS, env=env or {})


def test_a_principal_has_its_tokens_limits_workspace_and_own_upstream_token(tmp_path):
    secret = tmp_path / "bob-acedata"
    secret.write_text("bob-upstream-token-1234\n")
    r = roster(
        f"""
[principals.alice]
tokens = ["{token_hash(TOKEN)}"]
upstream_token_env = "ALICE_TOKEN"
max_daily = 5

[principals.bob]
tokens = ["{token_hash("other").removeprefix("sha256:").upper()}"]  # bare hex, any case
upstream_token_file = "{secret}"
oauth_subject = "auth0|bob"
""",
        env={"ALICE_TOKEN": "alice-up-123456"},
    )
    alice = r.by_hash[token_hash(TOKEN)]
    assert (alice.id, alice.workspace, alice.limits) == ("alice", "team:alice", Limits(running=3, daily=5))
    assert alice.upstream_token.get_secret_value() == "alice-up-123456" and "alice-up" not in repr(alice)
    bob = r.by_subject["auth0|bob"]
    assert r.by_hash[token_hash("other")] is bob and bob.upstream_token.get_secret_value() == "bob-upstream-token-1234"
    assert str(secret) in r.watched  # a rotated secret file is read again too
    assert roster('{"principals": {"c": {"tokens": []}}}', json_format=True).by_workspace["team:c"].limits == DEFAULTS


@pytest.mark.parametrize(
    "text, problem",
    [
        (f'[principals.a]\ntokens = ["{TOKEN}"]', "not a SHA-256 hash"),
        ('[principals.a]\nupstream_token = "' + TOKEN + '"', "write no token in this file"),
        ('[principals.a]\nupstream_token_env = "NOT_SET_ANYWHERE"', "NOT_SET_ANYWHERE"),
        ("[principals.a]\nmax_daily = 0", "max_daily"),
        ("[principals.a]\nmax_runnning = 2", "unknown key 'max_runnning'"),
        (
            f'[principals.a]\ntokens = ["{token_hash(TOKEN)}"]\n[principals.b]\ntokens = ["{token_hash(TOKEN)}"]',
            "also belongs to a",
        ),
        ('[principals."a b"]', "a name is"),
        ("[principals.a\n", "not valid TOML"),
        ("[other]\nx = 1", "expected one table"),
    ],
)
def test_a_file_that_does_not_check_is_refused_naming_the_problem_never_a_token(text, problem):
    with pytest.raises(ValueError) as caught:
        roster(text)
    assert problem in str(caught.value) and TOKEN not in str(caught.value)


def test_a_bad_file_stops_the_start_and_a_subject_the_file_does_not_name_gets_its_own_workspace(tmp_path):
    bad = tmp_path / "team.toml"
    bad.write_text(f'[principals.a]\ntokens = ["{TOKEN}"]\n')
    with pytest.raises(SettingsError, match="MJ_MCP_AUTH_TOKENS_FILE") as caught:
        Principals(DEFAULTS, bad)
    assert TOKEN not in str(caught.value)
    with pytest.raises(SettingsError, match="cannot be read"):
        Principals(DEFAULTS, tmp_path / "missing.toml")
    people = Principals(DEFAULTS)  # OAuth only
    assert people.by_subject("auth0-42").workspace == "oauth:auth0-42"
    odd = people.by_subject("auth0|42 with spaces")
    assert odd.workspace.startswith("oauth:") and "|" not in odd.workspace and odd.limits == DEFAULTS
    # The digest that names an odd subject's workspace is no subject's own: nobody can claim it.
    assert people.by_subject(odd.workspace.removeprefix("oauth:")).workspace != odd.workspace
    assert people.by_subject(odd.workspace.removeprefix("oauth:#")).workspace != odd.workspace
    assert people.by_token(TOKEN) is None and people.upstream_token("oauth:auth0-42") is None


def test_a_bind_others_can_reach_needs_authentication(tmp_path):
    from mj_mcp.server.http import check_bind

    team = tmp_path / "team.toml"
    team.write_text("")
    check_bind("127.0.0.1", Settings())
    with pytest.raises(SettingsError, match="loopback"):
        check_bind("0.0.0.0", Settings())
    check_bind("0.0.0.0", Settings(auth_tokens_file=team))
    check_bind("::", Settings(oauth_issuer="https://auth.example.com"))


def test_oauth_needs_the_resource_url_and_https(tmp_path):
    from mj_mcp.server.auth import authentication

    assert authentication(Settings()) is None  # nothing configured: the local user only
    with pytest.raises(SettingsError, match="MJ_MCP_RESOURCE_URL"):
        authentication(Settings(oauth_issuer="https://auth.example.com"))
    with pytest.raises(SettingsError, match="must be https"):
        authentication(Settings(oauth_issuer="http://auth.example.com", resource_url="https://mj.example.com/mcp"))
    made = authentication(
        Settings(
            oauth_issuer="https://auth.example.com", resource_url="https://mj.example.com/mcp", oauth_scopes=["mj"]
        )
    )
    assert str(made.settings.issuer_url) == "https://auth.example.com"  # as the tokens' iss: no slash added
    assert made.settings.required_scopes == ["mj"] and made.principals.by_token("x") is None


def test_a_team_file_gone_past_the_grace_period_refuses_every_static_token_until_a_valid_one_is_back(tmp_path, caplog):
    team = tmp_path / "team.toml"
    good = f'[principals.a]\ntokens = ["{token_hash(TOKEN)}"]\noauth_subject = "auth0|a"\n'
    team.write_text(good)
    patient = Principals(DEFAULTS, team, missing_grace_s=3600, check_every_s=0)
    strict = Principals(DEFAULTS, team, missing_grace_s=0, check_every_s=0)
    team.unlink()
    assert patient.by_token(TOKEN).id == "a"  # within its grace: a delete-then-write is under way
    assert strict.by_token(TOKEN) is None and strict.static_tokens_refused
    assert "every static token is refused" in caplog.text and TOKEN not in caplog.text
    assert strict.by_subject("auth0|a").id == "a"  # OAuth: not affected
    team.mkdir()  # what Docker leaves where a bind-mounted file was missing
    assert strict.by_token(TOKEN) is None
    team.rmdir()
    team.write_text(f'[principals.a]\ntokens = ["{TOKEN}"]\n')  # back, but not valid: still refused
    assert strict.by_token(TOKEN) is None and "static tokens stay refused" in caplog.text
    team.write_text(good + "\n")
    assert strict.by_token(TOKEN).id == "a" and not strict.static_tokens_refused


def test_a_team_file_path_that_is_a_directory_stops_the_start_saying_so(tmp_path):
    with pytest.raises(SettingsError, match="is a directory, not the team file") as caught:
        Principals(DEFAULTS, tmp_path)
    assert "MJ_MCP_AUTH_TOKENS_FILE" in str(caught.value) and "create the file" in str(caught.value)
