"""raw message retention: inbound_message.purged_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.add_column(sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_inbound_message_purged_at_processed_at',
                           ['purged_at', 'processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.drop_index('ix_inbound_message_purged_at_processed_at')
        batch.drop_column('purged_at')
