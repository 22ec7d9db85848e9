"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:30:36.830688
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('subject_type', sa.Text(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('data', sa.Text(), server_default='{}', nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_account_id_at', ['account_id', 'at'], unique=False)
        batch_op.create_index('ix_event_inbound_message_id', ['inbound_message_id'], unique=False)
        batch_op.create_index('ix_event_subject', ['subject_type', 'subject_id'], unique=False)

    op.create_table('inbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('protocol', sa.Text(), nullable=False),
    sa.Column('peer', sa.Text(), nullable=True),
    sa.Column('helo', sa.Text(), nullable=True),
    sa.Column('mail_from', sa.Text(), nullable=False),
    sa.Column('rcpt_tos', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.Text(), nullable=False),
    sa.Column('dedupe_key', sa.Text(), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.Text(), server_default='received', nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_message_content_hash', ['content_hash'], unique=False)
        batch_op.create_index('ix_inbound_message_message_id', ['message_id'], unique=False)
        batch_op.create_index('ix_inbound_message_state_id', ['state', 'id'], unique=False)
        batch_op.create_index('uq_inbound_message_dedupe_key', ['dedupe_key'], unique=True)

    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('roles', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'email', name='uq_app_user_account_email')
    )
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.create_index('ix_app_user_email', ['email'], unique=False)

    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('first_name', sa.Text(), server_default='', nullable=False),
    sa.Column('last_name', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.Text(), server_default='active', nullable=False),
    sa.Column('opt_out_reason', sa.Text(), nullable=True),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'email', name='uq_contact_account_email')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index('ix_contact_email', ['email'], unique=False)

    op.create_table('lead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('source_ip', sa.Text(), nullable=True),
    sa.Column('comments', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.Text(), server_default='active', nullable=False),
    sa.Column('flagged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('flagged_by', sa.Text(), nullable=True),
    sa.Column('flagged_via', sa.Text(), nullable=True),
    sa.Column('exported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notification_message_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index('ix_lead_account_status_created', ['account_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_lead_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('uq_lead_notification_message_id', ['notification_message_id'], unique=True)

    op.create_table('tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Text(), server_default='system', nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contact_id', 'name', name='uq_tag_contact_name')
    )
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.create_index('ix_tag_name', ['name'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.drop_index('ix_tag_name')

    op.drop_table('tag')
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index('uq_lead_notification_message_id')
        batch_op.drop_index('ix_lead_contact_id')
        batch_op.drop_index('ix_lead_account_status_created')

    op.drop_table('lead')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_email')

    op.drop_table('contact')
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_index('ix_app_user_email')

    op.drop_table('app_user')
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_index('uq_inbound_message_dedupe_key')
        batch_op.drop_index('ix_inbound_message_state_id')
        batch_op.drop_index('ix_inbound_message_message_id')
        batch_op.drop_index('ix_inbound_message_content_hash')

    op.drop_table('inbound_message')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_subject')
        batch_op.drop_index('ix_event_inbound_message_id')
        batch_op.drop_index('ix_event_account_id_at')

    op.drop_table('event')
    op.drop_table('account')
