"""provisional agency reference

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agency_reference_provisional', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Lines from before the flag: the front desk used to guess that a reference with a dot is a
    # file name; keep hiding exactly those until the agency's own reference replaces them.
    assignments = sa.table('assignments', sa.column('agency_reference', sa.String), sa.column('agency_reference_provisional', sa.Boolean))
    op.execute(
        assignments.update()
        .where(assignments.c.agency_reference.like('%.%'))
        .values(agency_reference_provisional=True)
    )


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('agency_reference_provisional')
