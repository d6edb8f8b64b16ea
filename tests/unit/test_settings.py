"""Settings: declared once, validated at start with messages naming the variable."""

from __future__ import annotations

import pytest

from mj_mcp.errors import SettingsError
from mj_mcp.settings import Settings, env_table


def test_defaults_without_a_token_mean_the_simulator():
    s = Settings.from_env({})
    assert s.simulate and s.embed_sim and s.api_token is None
    assert s.store_url.startswith("sqlite:///") and s.store_url.endswith("mj-mcp.db")
    assert s.export_dir is None and s.cache_dir is not None  # export_image's default folder, found at use


def test_values_are_parsed_and_the_token_is_secret():
    s = Settings.from_env(
        {
            "ACEDATACLOUD_API_TOKEN": " tok-123456789 ",
            "MJ_MCP_PREVIEW": "off",
            "MJ_MCP_LOG_LEVEL": "debug",
            "MJ_MCP_STORE": "memory",
            "MJ_MCP_ALLOWED_HOSTS": "mj.example.com, other.example:8000",
        }
    )
    assert not s.simulate and s.api_token.get_secret_value() == "tok-123456789"
    assert "tok-123456789" not in repr(s)
    assert s.preview_px is None and s.log_level == "DEBUG" and s.store_url == "memory"
    assert s.allowed_hosts == ["mj.example.com", "other.example:8000"]
    assert Settings.from_env({"ACEDATACLOUD_API_TOKEN": "t" * 12, "MJ_MCP_SIM": "1"}).simulate


@pytest.mark.parametrize(
    "env, says",
    [
        ({"MJ_MCP_CACHE_MB": "abc"}, "MJ_MCP_CACHE_MB='abc': Input should be a valid integer"),
        ({"MJ_MCP_CACHE_MB": "0"}, "MJ_MCP_CACHE_MB='0': Input should be greater than or equal to 16"),
        ({"MJ_MCP_MAX_IMAGES": "0"}, "MJ_MCP_MAX_IMAGES='0'"),
        ({"MJ_MCP_PREVIEW": "9000"}, "MJ_MCP_PREVIEW='9000'"),
        ({"MJ_MCP_WAIT_SECONDS": "-1"}, "MJ_MCP_WAIT_SECONDS"),
        ({"MJ_MCP_LOG_LEVEL": "loud"}, "MJ_MCP_LOG_LEVEL='loud'"),
        ({"MJ_MCP_STORE": "postgres://x"}, "expected `memory`, `sqlite:///path/to.db` or `redis://host:port/db`"),
        ({"MJ_MCP_EXPORT_DIR": "/"}, "filesystem root"),
        ({"MJ_MCP_EXPORT_DIR": "~"}, "home directory"),
        ({"ACEDATACLOUD_API_BASE_URL": "ftp://x"}, "ACEDATACLOUD_API_BASE_URL"),
        ({"MJ_MCP_WORKSPACE": "../etc"}, "MJ_MCP_WORKSPACE"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_accepts(env, says):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert says in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"MJ_MCP_CACHE_MB": "x", "MJ_MCP_RETRIES": "99"})
    assert "MJ_MCP_CACHE_MB" in str(err.value) and "MJ_MCP_RETRIES" in str(err.value)


def test_the_table_has_a_row_per_variable():
    rows = [line for line in env_table().splitlines()[2:]]
    fields = Settings.model_fields.values()
    declared = [f.json_schema_extra["env"] for f in fields if isinstance(f.json_schema_extra, dict)]
    assert [r.split("`")[1] for r in rows] == declared


def test_a_store_urls_password_is_masked_whatever_it_holds():
    from mj_mcp.settings import mask_url

    for password in ("secret", "pa:ss", "pa/ss", "p@ss", "a:b/c@d"):
        url = f"redis://user:{password}@redis.example:6379/0"
        assert mask_url(url) == "redis://user:***@redis.example:6379/0", url
    assert mask_url("redis://redis.example:6379/0") == "redis://redis.example:6379/0"
    assert mask_url("sqlite:///var/lib/mj.db") == "sqlite:///var/lib/mj.db"


NUMERIC = [
    info.json_schema_extra["env"]
    for info in Settings.model_fields.values()
    if isinstance(info.json_schema_extra, dict) and info.annotation in (int, float, int | None, float | None)
]


@pytest.mark.parametrize("var", NUMERIC)
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_nan_or_infinity_in_any_numeric_setting_is_called_not_a_number(var, value):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({var: value})
    said = str(err.value)
    assert said.startswith(f"{var}={value!r}: ") and "less than" not in said and "greater than" not in said, said
    assert "not a number" in said or "valid integer" in said, said  # an int setting: not a whole number either
