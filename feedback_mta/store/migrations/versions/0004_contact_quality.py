"""contact quality: review deadline, verification, engagement; suspect networks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('contact') as batch:
        batch.add_column(sa.Column('source_ip', sa.Text(), nullable=True))
        batch.add_column(sa.Column('quality', sa.Text(), nullable=True))
        batch.add_column(sa.Column('quality_reasons', sa.Text(), nullable=True))
        batch.add_column(sa.Column('review_deadline', _TS, nullable=True))
        batch.add_column(sa.Column('reminded_at', _TS, nullable=True))
        batch.add_column(sa.Column('verified_at', _TS, nullable=True))
        batch.add_column(sa.Column('verified_by', sa.Text(), nullable=True))
        batch.add_column(sa.Column('verified_reasons', sa.Text(), nullable=True))
        batch.add_column(sa.Column('engaged_at', _TS, nullable=True))
        batch.add_column(sa.Column('engagement', sa.Text(), server_default='', nullable=False))
        batch.create_index('ix_contact_review_deadline', ['review_deadline'], unique=False)
    op.create_table('suspect_network',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cidr', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('created_by', sa.Text(), server_default='cli', nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cidr', name='uq_suspect_network_cidr')
    )


def downgrade() -> None:
    op.drop_table('suspect_network')
    with op.batch_alter_table('contact') as batch:
        batch.drop_index('ix_contact_review_deadline')
        for column in ('engagement', 'engaged_at', 'verified_reasons', 'verified_by',
                       'verified_at', 'reminded_at', 'review_deadline', 'quality_reasons',
                       'quality', 'source_ip'):
            batch.drop_column(column)
