"""Accounts: balances, limits, webhooks on keys; task holds and costs; ledger; webhook outbox.

Revision ID: 0002_accounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_accounts"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("balance_micro", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("rpm_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer, nullable=True))
        batch.add_column(sa.Column("allowed_models", sa.JSON, nullable=True))
        batch.add_column(sa.Column("webhook_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("webhook_secret", sa.String(128), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("hold_micro", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("cost_micro", sa.BigInteger, nullable=True))
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micro", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),
    )
    op.create_index("ix_ledger_key_id", "ledger", ["key_id"])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
        sa.Column("gave_up_at", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("task_id", "type", name="uq_webhook_task_type"),
    )
    op.create_index("ix_webhook_due", "webhook_outbox", ["delivered_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_outbox")
    op.drop_index("ix_ledger_key_id", table_name="ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("cost_micro")
        batch.drop_column("hold_micro")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("webhook_secret", "webhook_url", "allowed_models", "max_concurrent",
                       "rpm_limit", "balance_micro"):
            batch.drop_column(column)
