"""feedback loops: undeliverable contacts, sent counts, kind auto_reply

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contact') as batch:
        batch.add_column(sa.Column('undeliverable_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('undeliverable_reason', sa.Text(), nullable=True))
    op.create_table('sent_count',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'day', name='uq_sent_count_account_day')
    )
    # The kind is printed by `parse --json` and matched by `inbox list --kind`: one spelling.
    op.execute("UPDATE inbound_message SET kind = 'auto_reply' WHERE kind = 'auto-reply'")


def downgrade() -> None:
    op.execute("UPDATE inbound_message SET kind = 'auto-reply' WHERE kind = 'auto_reply'")
    op.drop_table('sent_count')
    with op.batch_alter_table('contact') as batch:
        batch.drop_column('undeliverable_reason')
        batch.drop_column('undeliverable_at')
