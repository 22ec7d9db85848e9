"""The schema comes from migrations, and the migrations match the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from feedback_mta.store import db


@pytest.mark.empty_database
def test_upgrade_creates_everything_and_matches_the_models(database_url):
    from feedback_mta.config import DatabaseConfig

    engine = db.create_engine(DatabaseConfig(url=database_url))
    assert db.current_revision(engine) is None
    before, after = db.upgrade(engine)
    assert (before, after) == (None, db.head_revision())
    tables = set(sa.inspect(engine).get_table_names())
    assert {"account", "app_user", "contact", "lead", "tag", "inbound_message",
            "event"} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                SQLModel.metadata)
    assert diff == [], f"models and migrations disagree; write a migration: {diff}"
    assert db.upgrade(engine) == (after, after)  # idempotent
    db.check_schema(engine)
    engine.dispose()


def test_sqlite_is_wal_with_busy_timeout(sqlite_url):
    from feedback_mta.config import DatabaseConfig

    engine = db.create_engine(DatabaseConfig(url=sqlite_url, busy_timeout=7))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_check_schema_refuses_an_empty_database(sqlite_url):
    import pytest

    from feedback_mta.config import DatabaseConfig

    engine = db.create_engine(DatabaseConfig(url=sqlite_url))
    with pytest.raises(db.SchemaError, match="run `feedback-mta db upgrade`"):
        db.check_schema(engine)


def test_the_head_the_reads_compare_with_is_the_newest_script():
    """Reads check the schema against ``db.HEAD`` without loading alembic; a new migration
    must move it."""
    assert db.head_revision() == db.script_head() is not None
