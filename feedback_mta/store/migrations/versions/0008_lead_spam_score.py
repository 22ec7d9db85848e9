"""Leads scored as they arrive: lead.spam_score, lead.spam_reasons; spam_feature

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lead') as batch:
        batch.add_column(sa.Column('spam_score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('spam_reasons', sa.Text(), nullable=True))
    op.create_table('spam_feature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('feature', sa.Text(), nullable=False),
    sa.Column('seen', sa.Integer(), nullable=False),
    sa.Column('spam', sa.Integer(), nullable=False),
    sa.Column('ham', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'feature', name='uq_spam_feature_account_feature')
    )


def downgrade() -> None:
    op.drop_table('spam_feature')
    with op.batch_alter_table('lead') as batch:
        batch.drop_column('spam_reasons')
        batch.drop_column('spam_score')
