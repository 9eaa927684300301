"""list indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('unmatched_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unmatched_updates_agency_id_resolved_at'), ['agency_id', 'resolved_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('unmatched_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unmatched_updates_agency_id_resolved_at'))

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_created_at'))

