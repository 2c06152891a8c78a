"""Starting a fleet as a deploy does: ``tether migrate`` (several at once are safe),
replicas with ``--no-migrate``, the usual ``postgres://`` URLs, and one server per
SQLite data dir."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.test_tether_up import TETHER, cli, free_port, start, stop
from tests.support.databases import postgres_database


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
        **extra,
    }


def test_three_tether_migrate_at_once_then_replicas_without_migrating(tmp_path: Path) -> None:
    with postgres_database() as url:
        plain_url = url.replace("postgresql+asyncpg://", "postgres://")
        port = free_port()
        env = _env(tmp_path, port, TETHER_DATABASE_URL=plain_url)

        refused = cli(env, "up", "--port", str(port), "--no-migrate")
        assert refused.returncode == 2
        assert "run `tether migrate` first" in refused.stderr
        assert "Traceback" not in refused.stderr

        migrations = [
            subprocess.Popen(
                [*TETHER, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(3)
        ]
        outputs = [m.communicate(timeout=120) for m in migrations]
        assert [m.returncode for m in migrations] == [0, 0, 0], outputs
        assert all(b"schema up to date" in err for _, err in outputs)

        process, lines = start({**env, "TETHER_ADMIN_TOKEN": "tta_deploy-token"}, port)
        try:
            assert "(PostgreSQL)" in "\n".join(lines)
        finally:
            assert stop(process) == 0


def test_a_second_server_on_one_sqlite_data_dir_is_refused(tmp_path: Path) -> None:
    first_port, second_port = free_port(), free_port()
    process, _lines = start(_env(tmp_path, first_port), first_port)
    try:
        second = cli(_env(tmp_path, second_port), "up", "--port", str(second_port))
        assert second.returncode == 2
        assert f"(pid {process.pid}) is already running" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert stop(process) == 0
    again, _lines = start(_env(tmp_path, second_port), second_port)
    assert stop(again) == 0


def test_an_unknown_database_url_scheme_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    result = cli(_env(tmp_path, port, TETHER_DATABASE_URL="mysql://x@y/z"), "migrate")
    assert result.returncode == 2
    assert "must start with postgresql://" in result.stderr


def test_three_replicas_started_together_adopt_one_env_admin_token(tmp_path: Path) -> None:
    """As deploy/compose.yaml starts a fleet: ``tether migrate``, then replicas with the
    same ``TETHER_ADMIN_TOKEN`` at once on a fresh database. Every one comes up (one
    creates the token, the others adopt it) and every one accepts it."""
    token = "tta_fleet-deploy-token-0123456789"
    with postgres_database() as url:
        plain_url = url.replace("postgresql+asyncpg://", "postgres://")
        ports = [free_port() for _ in range(3)]
        envs = [
            _env(tmp_path / f"r{i}", port, TETHER_DATABASE_URL=plain_url, TETHER_ADMIN_TOKEN=token)
            for i, port in enumerate(ports)
        ]
        migrated = cli(envs[0], "migrate")
        assert migrated.returncode == 0, migrated.stderr
        with ThreadPoolExecutor(3) as pool:
            started = list(pool.map(lambda ep: _try_start(*ep), zip(envs, ports, strict=True)))
        try:
            failures = [lines for process, lines in started if process is None]
            assert not failures, failures
            for env in envs:
                listed = cli(env, "projects", "list")
                assert listed.returncode == 0, listed.stderr
            tokens = cli(envs[0], "tokens", "list")
            assert tokens.stdout.count("bootstrap") == 1, tokens.stdout
        finally:
            for process, _lines in started:
                if process is not None:
                    assert stop(process) == 0


def _try_start(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str] | None, list[str]]:
    try:
        return start(env, port, "--no-migrate")
    except AssertionError as exc:
        return None, [str(exc)]
