"""Per-service schema, role and migrations (CONVENTIONS "Database").

    python -m services.platform.migrate --admin-url URL --service identity \
        --password PW [--migrations-dir migrations] [--database fintech]

Runs as the admin role and is idempotent: creates the database `fintech` if
missing, creates/updates the login role `<svc>_svc`, the schema `<svc>` (owned
by the admin, so the service role can never run DDL), applies
`migrations/_platform/*.sql` then `migrations/<svc>/*.sql` not yet applied
(each in its own transaction, recorded with a checksum in
`<svc>.schema_migrations`), then (re)applies the grants. Concurrent runs are
serialised by a session advisory lock.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "fintech"
PLATFORM_DIR = "_platform"
APPEND_ONLY_TABLES = ("audit_logs",)
READ_ONLY_TABLES = ("schema_migrations",)
MIGRATION_NAME = re.compile(r"\d{4}_[a-z0-9_]+\.sql")
MAX_MIGRATIONS = 1000
# pg_advisory_lock key shared by every migrate run on the cluster.
MIGRATE_LOCK_ID = 0x66696E74656368  # "fintech"
SERVICE_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str  # "_platform/0001_platform.sql" or "identity/0001_users.sql"
    sql: str
    checksum: str


def role_name(service: str) -> str:
    return f"{service}_svc"


def database_url(admin_url: str, database: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + database))


def load_migrations(migrations_dir: Path, service: str) -> list[Migration]:
    schema_ident = '"' + service + '"'
    found: list[Migration] = []
    for folder in (PLATFORM_DIR, service):
        directory = migrations_dir / folder
        if not directory.is_dir():
            if folder == PLATFORM_DIR:
                raise MigrationError(f"missing {directory}")
            continue
        for path in sorted(directory.glob("*.sql")):
            if not MIGRATION_NAME.fullmatch(path.name):
                raise MigrationError(f"bad migration file name {path} (want NNNN_name.sql)")
            # str.replace, not str.format: SQL is full of braces ('{}'::jsonb).
            body = path.read_text().replace("{schema}", schema_ident)
            checksum = hashlib.sha256(body.encode()).hexdigest()
            found.append(Migration(f"{folder}/{path.name}", body, checksum))
    assert len(found) <= MAX_MIGRATIONS
    return found


def ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except psycopg.errors.DuplicateDatabase:
            pass  # a concurrent run created it first
        except psycopg.errors.UniqueViolation:
            pass  # same race, reported by the catalog's unique index


def migrate(
    admin_url: str,
    service: str,
    password: str,
    migrations_dir: Path = Path("migrations"),
    database: str = DEFAULT_DATABASE,
) -> list[str]:
    """Bring the service's schema up to date; returns the migrations applied now."""
    if not SERVICE_NAME.fullmatch(service):
        raise MigrationError(f"service name must match {SERVICE_NAME.pattern}: {service!r}")
    if not password:
        raise MigrationError("the service role needs a password")
    migrations = load_migrations(migrations_dir, service)
    ensure_database(admin_url, database)
    schema = sql.Identifier(service)
    role = sql.Identifier(role_name(service))
    applied_now: list[str] = []
    with psycopg.connect(database_url(admin_url, database), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_ID,))
        try:
            _ensure_role_and_schema(conn, service, password, schema, role)
            applied = _applied(conn, schema)
            for migration in migrations:
                known = applied.get(migration.name)
                if known is not None:
                    if known != migration.checksum:
                        raise MigrationError(
                            f"{migration.name} changed after it was applied; add a new migration"
                        )
                    continue
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL search_path = {}").format(schema))
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.schema_migrations (name, checksum) VALUES (%s, %s)"
                        ).format(schema),
                        (migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
                log.info("applied %s to schema %s", migration.name, service)
            _grant(conn, database, service, schema, role)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_ID,))
    return applied_now


def _ensure_role_and_schema(
    conn: psycopg.Connection,
    service: str,
    password: str,
    schema: sql.Identifier,
    role: sql.Identifier,
) -> None:
    with conn.transaction():
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (role_name(service),)
        ).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " PASSWORD {}"
            ).format(role, sql.Literal(password))
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema)
        )


def _applied(conn: psycopg.Connection, schema: sql.Identifier) -> dict[str, str]:
    rows = conn.execute(
        sql.SQL("SELECT name, checksum FROM {}.schema_migrations").format(schema)
    ).fetchall()
    return {name: checksum for name, checksum in rows}


def _grant(
    conn: psycopg.Connection,
    database: str,
    service: str,
    schema: sql.Identifier,
    role: sql.Identifier,
) -> None:
    statements: list[sql.SQL | sql.Composed] = [
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(role),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            schema, role
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role),
        sql.SQL("ALTER ROLE {} SET search_path = {}").format(role, schema),
    ]
    for table in APPEND_ONLY_TABLES:
        statements.append(
            sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {}.{} FROM {}").format(
                schema, sql.Identifier(table), role
            )
        )
    for table in READ_ONLY_TABLES:
        statements.append(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {}.{} FROM {}").format(
                schema, sql.Identifier(table), role
            )
        )
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
    log.info("grants applied for role %s on schema %s", role_name(service), service)


def main(argv: Sequence[str] | None = None) -> int:
    # Secrets come from the environment, not argv: a command line is visible to
    # every user of the machine (ps), and a generated password may begin with
    # "-", which argparse would take for an option.
    parser = argparse.ArgumentParser(
        prog="python -m services.platform.migrate",
        epilog="The admin URL and the role password are read from FINTECH_MIGRATE_ADMIN_URL "
        "and FINTECH_MIGRATE_PASSWORD when the flags are absent.",
    )
    parser.add_argument("--admin-url", default=os.environ.get("FINTECH_MIGRATE_ADMIN_URL"))
    parser.add_argument("--service", required=True)
    parser.add_argument("--password", default=os.environ.get("FINTECH_MIGRATE_PASSWORD"))
    parser.add_argument("--migrations-dir", type=Path, default=Path("migrations"))
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args(argv)
    if not args.admin_url or not args.password:
        parser.error("the admin URL and the role password are required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        applied = migrate(
            args.admin_url, args.service, args.password, args.migrations_dir, args.database
        )
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    print(f"{args.service}: {len(applied)} migration(s) applied")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
