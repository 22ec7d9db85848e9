"""Review and behaviour: lead.source_net, lead.digested_at and their indexes; comment_band
(campaigns), review_link (sign-in links to the review page), spam_feature.auto

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lead') as batch:
        batch.add_column(sa.Column('source_net', sa.Text(), nullable=True))
        batch.add_column(sa.Column('digested_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('spam_feature') as batch:
        batch.add_column(sa.Column('auto', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_lead_source_ip_created', 'lead', ['source_ip', 'created_at'])
    op.create_index('ix_lead_source_net_created', 'lead', ['source_net', 'created_at'])
    op.create_table('comment_band',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('band', sa.BigInteger(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_comment_band_band_created', 'comment_band', ['band', 'created_at'])
    op.create_table('review_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('secret_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('review_link')
    op.drop_index('ix_comment_band_band_created', table_name='comment_band')
    op.drop_table('comment_band')
    op.drop_index('ix_lead_source_net_created', table_name='lead')
    op.drop_index('ix_lead_source_ip_created', table_name='lead')
    with op.batch_alter_table('spam_feature') as batch:
        batch.drop_column('auto')
    with op.batch_alter_table('lead') as batch:
        batch.drop_column('digested_at')
        batch.drop_column('source_net')
