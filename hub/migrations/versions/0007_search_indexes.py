"""search indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('parties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parties_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_parties_enterprise_number'), ['enterprise_number'], unique=False)
    # name prefix search: lower(name) LIKE 'x%'; PostgreSQL needs text_pattern_ops for that
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_parties_lower_name ON parties (lower(name) text_pattern_ops)")
    else:
        op.execute("CREATE INDEX ix_parties_lower_name ON parties (lower(name))")
    op.execute("UPDATE parties SET email = lower(email) WHERE email IS NOT NULL")



def downgrade() -> None:
    op.execute("DROP INDEX ix_parties_lower_name")
    with op.batch_alter_table('parties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parties_enterprise_number'))
        batch_op.drop_index(batch_op.f('ix_parties_email'))

