"""Migrations, roles and grants against a real Postgres."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.platform.migrate import MigrationError, migrate
from tests.integration.platform.platform_it_support import MIGRATIONS, ServiceSchema, provision

# What every schema gets, in order (the test service has no migrations of its own).
PLATFORM_MIGRATIONS = sorted(
    f"_platform/{path.name}" for path in (MIGRATIONS / "_platform").glob("*.sql")
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_services(infra) -> Iterator[tuple[ServiceSchema, ServiceSchema]]:  # type: ignore[no-untyped-def]
    a, b = provision(infra.pg_admin_url), provision(infra.pg_admin_url)
    yield a, b
    a.drop()
    b.drop()


def test_second_migrate_is_a_noop(infra, two_services) -> None:  # type: ignore[no-untyped-def]
    a, _ = two_services
    assert migrate(infra.pg_admin_url, a.name, a.password, MIGRATIONS) == []
    with psycopg.connect(a.admin_url) as conn:
        query = sql.SQL("SELECT name FROM {}.schema_migrations").format(sql.Identifier(a.name))
        names = [r[0] for r in conn.execute(query)]
    assert sorted(names) == PLATFORM_MIGRATIONS


def test_role_uses_own_schema_only(two_services) -> None:  # type: ignore[no-untyped-def]
    a, b = two_services
    with psycopg.connect(a.url, autocommit=True) as conn:
        assert conn.execute("SHOW search_path").fetchone() == (a.name,)
        conn.execute("SELECT count(*) FROM outbox_events")  # its own table, unqualified
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SELECT * FROM {}.outbox_events").format(sql.Identifier(b.name)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ('x', 'y')")


def test_audit_logs_are_append_only(two_services) -> None:  # type: ignore[no-untyped-def]
    a, _ = two_services
    with psycopg.connect(a.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_logs (entity, entity_id, action, performed_by)"
            " VALUES ('u', '1', 'c', 't')"
        )
        assert conn.execute("SELECT count(*) FROM audit_logs").fetchone() == (1,)
        for statement in (
            "UPDATE audit_logs SET action = 'x'",
            "DELETE FROM audit_logs",
            "TRUNCATE audit_logs",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # Second line of defence: even the admin (owner) is stopped by the trigger.
    with psycopg.connect(a.admin_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(
                sql.SQL("UPDATE {}.audit_logs SET action = 'x'").format(sql.Identifier(a.name))
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(sql.SQL("DELETE FROM {}.audit_logs").format(sql.Identifier(a.name)))


def test_changed_applied_migration_is_an_error(infra, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(MIGRATIONS / "_platform", tmp_path / "_platform")
    svc = provision(infra.pg_admin_url, "ptchk", tmp_path)
    try:
        own = tmp_path / svc.name
        own.mkdir()
        (own / "0001_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        assert migrate(infra.pg_admin_url, svc.name, svc.password, tmp_path) == [
            f"{svc.name}/0001_things.sql"
        ]
        with psycopg.connect(svc.url, autocommit=True) as conn:
            conn.execute("INSERT INTO things VALUES (1)")  # grants cover new tables
            conn.execute("DELETE FROM things")
        (own / "0001_things.sql").write_text("CREATE TABLE things (id text PRIMARY KEY);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(infra.pg_admin_url, svc.name, svc.password, tmp_path)
        (own / "0001_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        (own / "0002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_fn();")
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(infra.pg_admin_url, svc.name, svc.password, tmp_path)
        with psycopg.connect(svc.admin_url) as conn:
            # The failed migration left nothing behind (one transaction per file).
            assert conn.execute("SELECT to_regclass(%s)", (f"{svc.name}.half",)).fetchone() == (
                None,
            )
    finally:
        svc.drop()


def test_concurrent_runs_apply_once(infra) -> None:  # type: ignore[no-untyped-def]
    svc = provision(infra.pg_admin_url, "ptcc")
    svc.drop()  # start from nothing, then race two runs
    results: list[list[str]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(infra.pg_admin_url, svc.name, svc.password, MIGRATIONS))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not failures
        # One run applied every platform migration; the other found them applied.
        assert sorted(len(r) for r in results) == [0, len(PLATFORM_MIGRATIONS)]
    finally:
        svc.drop()
