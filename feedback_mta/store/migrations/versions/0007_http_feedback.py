"""Feedback over HTTP: inbound_message.provider, hook_nonce; the account guard's state

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.add_column(sa.Column('provider', sa.Text(), nullable=True))
    with op.batch_alter_table('account') as batch:
        batch.add_column(sa.Column('sending', sa.Text(), server_default='ok', nullable=False))
        batch.add_column(sa.Column('sending_reasons', sa.Text(), nullable=True))
        batch.add_column(sa.Column('sending_changed_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('resumed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('hook_nonce',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('nonce', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.Text(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'nonce', name='uq_hook_nonce_provider_nonce')
    )
    with op.batch_alter_table('hook_nonce') as batch:
        batch.create_index('ix_hook_nonce_seen_at', ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hook_nonce') as batch:
        batch.drop_index('ix_hook_nonce_seen_at')
    op.drop_table('hook_nonce')
    with op.batch_alter_table('account') as batch:
        batch.drop_column('resumed_at')
        batch.drop_column('sending_changed_at')
        batch.drop_column('sending_reasons')
        batch.drop_column('sending')
    with op.batch_alter_table('inbound_message') as batch:
        batch.drop_column('provider')
