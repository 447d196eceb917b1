"""The migrate CLI takes its secrets from the environment, whatever they look like."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from services.platform.migrate import DEFAULT_DATABASE, database_url

REPO = Path(__file__).resolve().parents[3]


def test_password_starting_with_a_dash_from_the_environment(infra, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = f"clitest{uuid.uuid4().hex[:8]}"
    (tmp_path / "_platform").symlink_to(REPO / "migrations" / "_platform")
    password = "-starts-with-a-dash"
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{REPO / 'gen'}",
        "FINTECH_MIGRATE_ADMIN_URL": infra.pg_admin_url,
        "FINTECH_MIGRATE_PASSWORD": password,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.platform.migrate",
            "--service",
            service,
            "--migrations-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    admin = database_url(infra.pg_admin_url, DEFAULT_DATABASE)
    try:
        role_url = psycopg.conninfo.make_conninfo(admin, user=f"{service}_svc", password=password)
        with psycopg.connect(role_url) as conn:
            assert conn.execute("SELECT current_schema()").fetchone() == (service,)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{service}" CASCADE')
            conn.execute(f'DROP OWNED BY "{service}_svc"')
            conn.execute(f'DROP ROLE IF EXISTS "{service}_svc"')


def test_missing_secrets_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTECH_MIGRATE_")}
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'gen'}"
    done = subprocess.run(
        [sys.executable, "-m", "services.platform.migrate", "--service", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "admin URL and the role password are required" in done.stderr
