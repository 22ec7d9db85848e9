"""The light Core tables (``store.tables``) are the models' tables, column by column."""

from __future__ import annotations

import pytest
from sqlmodel import SQLModel

from feedback_mta.store import models, tables


def _shape(table) -> list[tuple]:
    return [(c.name, type(c.type), c.nullable, c.primary_key) for c in table.columns]


@pytest.mark.parametrize("name", sorted(tables.metadata.tables))
def test_each_light_table_has_the_models_columns(name):
    """Same names in the same order, same types, same NULLs, same key: a column added to a
    model and not here fails this (a read would not see it)."""
    assert models.table_of  # the models are loaded: SQLModel.metadata holds every table
    assert _shape(tables.metadata.tables[name]) == _shape(SQLModel.metadata.tables[name])


def test_the_light_tables_are_those_the_fast_reads_need():
    assert set(tables.metadata.tables) == {"lead", "contact", "tag", "event", "inbound_message"}


def test_mailable_means_the_same_in_the_model_and_the_light_table():
    """One definition: the model's SQL expression is the light table's, on its columns."""
    from sqlalchemy.dialects import sqlite

    def sql(expr) -> str:
        return str(expr.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))

    assert sql(models.Contact.not_mailable_reason) == sql(tables.CONTACT_NOT_MAILABLE)
