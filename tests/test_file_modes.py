"""The hub's files on disk are the owner's alone: the SQLite database holds every case, party
and attachment, so it (and the journal files SQLite makes beside it) must not be created
readable by every account on the machine, whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from hub.db import Database
from loket.cli import main


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_loket_db_upgrade_creates_var_and_the_database_owner_only(tmp_path, loose_umask):
    var = tmp_path / "var"
    env = {"LOKET_VAR_DIR": str(var), "LOKET_DATABASE_URL": ""}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert mode(var / "loket.db") == 0o600
    assert mode(var) == 0o700


def test_the_sqlite_write_ahead_log_takes_the_database_files_mode(tmp_path, loose_umask):
    db = Database(f"sqlite:///{tmp_path / 'data' / 'cases.db'}")
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE t (x TEXT)"))
            s.execute(text("INSERT INTO t VALUES ('private')"))
        files = sorted(p.name for p in (tmp_path / "data").iterdir())
        assert "cases.db-wal" in files
        assert {p: mode(tmp_path / "data" / p) for p in files} == dict.fromkeys(files, 0o600)
    finally:
        db.dispose()


def test_an_existing_database_file_keeps_the_mode_its_owner_gave_it(tmp_path, loose_umask):
    path = tmp_path / "shared.db"
    path.touch()
    os.chmod(path, 0o640)
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        s.execute(text("CREATE TABLE t (x TEXT)"))
    db.dispose()
    assert mode(path) == 0o640


def test_the_front_desks_secret_key_and_a_new_var_folder_are_owner_only(tmp_path, loose_umask):
    from hub.config import Settings
    from hub.frontdesk import secret_key

    var = tmp_path / "fresh-var"
    key = secret_key(Settings(var_dir=var, database_url="sqlite://"))
    assert len(key) == 64 and (var / "secret_key").read_text() == key
    assert mode(var / "secret_key") == 0o600 and mode(var) == 0o700
