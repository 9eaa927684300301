"""worker heartbeats; PostgreSQL tells waiting workers when deliveries are queued

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_beats",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_beats")),
    )
    op.create_index(op.f("ix_worker_beats_seen_at"), "worker_beats", ["seen_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # One NOTIFY per statement that queues deliveries (a filing, a reply, a referral, a
        # resend's new row): idle workers wait on LISTEN instead of asking every tick.
        op.execute(
            """
            CREATE FUNCTION loket_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('loket_outbox', '');
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER deliveries_queued AFTER INSERT ON deliveries "
            "FOR EACH STATEMENT EXECUTE FUNCTION loket_outbox_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS deliveries_queued ON deliveries")
        op.execute("DROP FUNCTION IF EXISTS loket_outbox_notify()")
    op.drop_index(op.f("ix_worker_beats_seen_at"), table_name="worker_beats")
    op.drop_table("worker_beats")
