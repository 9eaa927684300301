"""Settings are read from the environment once, when the process starts, never at import."""

from __future__ import annotations

import pytest

from hub.config import ConfigError, Settings, var_dir
from hub.frontdesk import secret_key


def test_the_var_dir_and_its_sqlite_file_follow_loket_var_dir_when_settings_are_read(tmp_path):
    moved = Settings.from_env({"LOKET_VAR_DIR": str(tmp_path / "var")})
    assert (
        moved.var_dir
        == (tmp_path / "var").resolve()
        == var_dir({"LOKET_VAR_DIR": str(tmp_path / "var")})
    )
    assert moved.database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'loket.db'}"
    named = Settings.from_env(
        {"LOKET_VAR_DIR": str(tmp_path), "LOKET_DATABASE_URL": "postgres://h/x"}
    )
    assert named.database_url == "postgresql+psycopg://h/x"


def test_limits_key_and_metrics_port_come_from_the_environment():
    s = Settings.from_env(
        {
            "LOKET_FILING_LIMIT": "2 per minute",
            "LOKET_TRACKING_LIMIT": "5 per day",
            "LOKET_SIGNIN_LIMIT": "3 per hour",
            "LOKET_WORKER_METRICS_PORT": "9464",
            "LOKET_SECRET_KEY": "s3cret",
        }
    )
    assert (s.filing_limit, s.tracking_limit, s.signin_limit) == (
        "2 per minute",
        "5 per day",
        "3 per hour",
    )
    assert s.worker_metrics_port == 9464 and s.secret_key == "s3cret"
    assert "s3cret" not in repr(s)
    defaults = Settings.from_env({})
    assert (defaults.filing_limit, defaults.worker_metrics_port, defaults.secret_key) == (
        "10 per hour",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LOKET_FILING_LIMIT", "ten an hour", "'10 per hour'"),
        ("LOKET_WORKER_METRICS_PORT", "metrics", "is not a port number"),
    ],
)
def test_a_wrong_setting_stops_the_start_naming_it_and_the_fix(name, value, says):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value) and says in str(err.value)


def test_the_front_desk_key_is_the_configured_one_else_one_kept_in_the_var_dir(tmp_path):
    assert secret_key(Settings(var_dir=tmp_path, secret_key="given")) == "given"
    kept = secret_key(Settings(var_dir=tmp_path / "var"))
    assert (tmp_path / "var" / "secret_key").read_text().strip() == kept
    assert secret_key(Settings(var_dir=tmp_path / "var")) == kept  # every process the same key
