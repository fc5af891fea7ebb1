"""Choosing the store: [store] url, --store-url, CALLSYNC_STORE_URL; the password never in config.toml."""

from __future__ import annotations

import pytest

from connector import cli, secrets
from connector.config import ConfigError, parse_config
from connector.store_url import check_url, chosen_url, with_password


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", None),
        ("postgresql://callsync@db.internal/callsync", None),
        ("postgres://callsync@db.internal:6432/callsync?sslmode=require", None),
        ("postgresql://postgres@/t1?host=/run/postgresql", None),
        ("postgresql://callsync:hunter2@db/callsync", "must not hold a password"),
        ("mysql://callsync@db/callsync", "must be a PostgreSQL URL"),
        ("/var/lib/callsync.db", "must be a PostgreSQL URL"),
        ("postgresql://callsync@db", "must name a database"),
        ("postgresql://callsync@db:port/x", "not a valid URL"),
    ],
)
def test_store_urls(url, error):
    if error is None:
        assert check_url(url, "store.url") == url
    else:
        with pytest.raises(ConfigError, match=error) as raised:
            check_url(url, "store.url")
        assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("file_url", "option", "env", "expected"),
    [
        ("", None, {}, ""),
        ("postgresql://a@h/file", None, {}, "postgresql://a@h/file"),
        ("postgresql://a@h/file", None, {"CALLSYNC_STORE_URL": "postgresql://a:pw@h/env"}, "postgresql://a:pw@h/env"),
        ("postgresql://a@h/file", "postgresql://a@h/opt", {"CALLSYNC_STORE_URL": "postgresql://a@h/env"},
         "postgresql://a@h/opt"),
        ("", None, {"CALLSYNC_STORE_URL": "  "}, ""),
    ],
)
def test_the_option_wins_over_the_environment_which_wins_over_the_file(file_url, option, env, expected):
    assert chosen_url(file_url, option, env) == expected


def test_a_password_on_the_command_line_is_refused():
    with pytest.raises(ConfigError, match="--store-url must not hold a password"):
        chosen_url("", "postgresql://a:pw@h/db", {})


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        ("postgresql://cs@db/callsync", "p@ss:w/rd", "postgresql://cs:p%40ss%3Aw%2Frd@db/callsync"),
        ("postgresql://cs:inurl@db/callsync", "other", "postgresql://cs:inurl@db/callsync"),
        ("postgresql://cs@db:6432/callsync?sslmode=require", None, "postgresql://cs@db:6432/callsync?sslmode=require"),
    ],
)
def test_with_password(url, password, expected):
    assert with_password(url, password) == expected


def test_the_store_target_takes_the_password_from_the_keyring_or_the_environment(tmp_path, monkeypatch):
    config = parse_config({"store": {"url": "postgresql://cs@db/callsync"}}, tmp_path)
    assert config.store_target.url == "postgresql://cs@db/callsync"  # none anywhere: libpq's own (.pgpass)
    secrets.set_secret("store", "from-keyring")
    secrets.invalidate_cache()
    assert config.store_target.url == "postgresql://cs:from-keyring@db/callsync"
    monkeypatch.setenv("CALLSYNC_STORE_PASSWORD", "from-env")
    assert config.store_target.url == "postgresql://cs:from-env@db/callsync"
    assert "from-env" not in config.store_target.describe()


def test_without_a_url_the_store_is_the_sqlite_file_in_the_data_dir(tmp_path):
    target = parse_config({}, tmp_path).store_target
    assert target.dialect == "sqlite" and target.path == tmp_path / "callsync.db"


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"store": {"uri": "postgresql://a@h/db"}}, "did you mean 'url'"),
        ({"store": {"password": "x"}}, "secrets never go in config.toml"),
        ({"store": {"url": 5}}, "store.url must be str"),
        ({"store": "postgresql://a@h/db"}, "store must be a table"),
    ],
)
def test_bad_store_tables(tmp_path, table, error):
    with pytest.raises(ConfigError, match=error):
        parse_config(table, tmp_path)


def test_several_workers_on_sqlite_end_in_one_line_saying_how_to_set_the_url(tmp_path, capsys):
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--workers", "2", "--port", "0", "--admin-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "several workers need the PostgreSQL store" in err and "--store-url" in err and "[store] url" in err
    assert not (tmp_path / "callsync.db").exists()


def test_store_url_applies_only_to_commands_that_open_the_store(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["secret", "status", "--store-url", "postgresql://a@h/db"])
    args = cli.parse_args(["--store-url", "postgresql://a@h/db", "dead", "--data-dir", str(tmp_path)])
    assert cli.load(args, create=False).store.url == "postgresql://a@h/db"


def test_workers_with_a_store_that_cannot_be_reached_end_in_one_line(tmp_path, capsys):
    url = f"postgresql://callsync@/callsync?host={tmp_path}/nowhere&port=5999"
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--workers", "2", "--store-url", url, "--port", "0",
                     "--admin-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("callsync: cannot start: cannot open the store")
    assert "Traceback" not in err and not (tmp_path / "callsync.db").exists()
