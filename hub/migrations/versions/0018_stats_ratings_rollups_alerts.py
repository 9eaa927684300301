"""ratings, statistics rollups, market-signal alerts

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa



revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'ratings',
        sa.Column('id', BigId, nullable=False),
        sa.Column('case_id', BigId, nullable=False),
        sa.Column('assignment_id', BigId, nullable=False),
        sa.Column('agency_id', sa.String(length=64), nullable=False),
        sa.Column('answer', sa.String(length=8), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_ratings_assignment_id_assignments'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_ratings_case_id_cases'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ratings')),
        sa.UniqueConstraint('assignment_id', name=op.f('uq_ratings_assignment_id')),
    )
    op.create_index(op.f('ix_ratings_agency_id_created_at'), 'ratings', ['agency_id', 'created_at'], unique=False)
    op.create_table(
        'stat_rollups',
        sa.Column('id', BigId, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('metric', sa.String(length=16), nullable=False),
        sa.Column('agency_id', sa.String(length=64), server_default='', nullable=False),
        sa.Column('area', sa.String(length=32), server_default='', nullable=False),
        sa.Column('kind', sa.String(length=16), server_default='', nullable=False),
        sa.Column('value', sa.String(length=32), server_default='', nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stat_rollups')),
        sa.UniqueConstraint('day', 'metric', 'agency_id', 'area', 'kind', 'value', name=op.f('uq_stat_rollups_day_metric_agency_id_area_kind_value')),
    )
    op.create_index(op.f('ix_stat_rollups_metric_month'), 'stat_rollups', ['metric', 'month'], unique=False)
    op.create_table(
        'stat_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('last_day', sa.Date(), nullable=True),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_stat_state')),
    )
    op.create_table(
        'trader_alerts',
        sa.Column('id', BigId, nullable=False),
        sa.Column('trader_key', sa.String(length=200), nullable=False),
        sa.Column('trader_name', sa.String(length=200), nullable=False),
        sa.Column('week', sa.String(length=8), nullable=False),
        sa.Column('area', sa.String(length=32), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('trailing_mean', sa.Float(), nullable=False),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trader_alerts')),
        sa.UniqueConstraint('trader_key', 'week', name=op.f('uq_trader_alerts_trader_key_week')),
    )
    op.create_index(op.f('ix_assignments_created_at'), 'assignments', ['created_at'], unique=False)
    op.create_index(op.f('ix_status_events_recorded_at'), 'status_events', ['recorded_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_status_events_recorded_at'), table_name='status_events')
    op.drop_index(op.f('ix_assignments_created_at'), table_name='assignments')
    op.drop_table('trader_alerts')
    op.drop_table('stat_state')
    op.drop_index(op.f('ix_stat_rollups_metric_month'), table_name='stat_rollups')
    op.drop_table('stat_rollups')
    op.drop_index(op.f('ix_ratings_agency_id_created_at'), table_name='ratings')
    op.drop_table('ratings')
