"""delivery control

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('agency_states',
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('breaker', sa.String(length=16), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('probe_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('probe_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('paused_by', sa.String(length=64), nullable=True),
    sa.Column('paused_reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('agency_id', name=op.f('pk_agency_states'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resends', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('round_started_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_index(batch_op.f('ix_deliveries_agency_id_state'))
        batch_op.create_index(batch_op.f('ix_deliveries_agency_id_state_next_attempt_at'), ['agency_id', 'state', 'next_attempt_at'], unique=False)

def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_agency_id_state_next_attempt_at'))
        batch_op.create_index(batch_op.f('ix_deliveries_agency_id_state'), ['agency_id', 'state'], unique=False)
        batch_op.drop_column('round_started_attempts')
        batch_op.drop_column('resends')
        batch_op.drop_column('dead_at')

    op.drop_table('agency_states')
