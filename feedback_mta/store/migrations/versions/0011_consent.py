"""contact consent: how each contact came (method, source, time, IP, agent), its
confirmation with evidence, and the deadline of a pending one. Existing contacts are
``unknown`` and need no confirmation (the operator decides; ``check-config`` says so).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('contact') as batch:
        batch.add_column(sa.Column('consent_method', sa.Text(), nullable=False,
                                   server_default='unknown'))
        batch.add_column(sa.Column('consent_source', sa.Text(), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('consent_at', _TS, nullable=True))
        batch.add_column(sa.Column('consent_ip', sa.Text(), nullable=True))
        batch.add_column(sa.Column('consent_user_agent', sa.Text(), nullable=True))
        batch.add_column(sa.Column('confirmed_at', _TS, nullable=True))
        batch.add_column(sa.Column('confirmed_via', sa.Text(), nullable=True))
        batch.add_column(sa.Column('confirmation_evidence', sa.Text(), nullable=True))
        batch.add_column(sa.Column('confirm_by', _TS, nullable=True))
        batch.add_column(sa.Column('confirmation_sent_at', _TS, nullable=True))
        batch.add_column(sa.Column('confirmation_reminded_at', _TS, nullable=True))
        batch.create_index('ix_contact_confirm_by', ['confirm_by'])


def downgrade() -> None:
    with op.batch_alter_table('contact') as batch:
        batch.drop_index('ix_contact_confirm_by')
        for name in ('confirmation_reminded_at', 'confirmation_sent_at', 'confirm_by',
                     'confirmation_evidence', 'confirmed_via', 'confirmed_at',
                     'consent_user_agent', 'consent_ip', 'consent_at', 'consent_source',
                     'consent_method'):
            batch.drop_column(name)
