"""outbound message (transactional outbox for acknowledgements)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('outbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('mail_from', sa.Text(), nullable=False),
    sa.Column('rcpt_to', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.Text(), server_default='queued', nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_message_state_next', ['state', 'next_attempt_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_message_state_next')
    op.drop_table('outbound_message')
