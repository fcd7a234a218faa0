"""Initial schema: api keys, tasks, task events.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "tasks",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("reference_key", sa.String(255), nullable=True),
        sa.Column("remixed_from", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("status_updated_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("delivered_seconds", sa.Float, nullable=True),
        sa.Column("delivered_width", sa.Integer, nullable=True),
        sa.Column("delivered_height", sa.Integer, nullable=True),
        sa.Column("video_key", sa.String(255), nullable=True),
        sa.Column("video_bytes", sa.BigInteger, nullable=True),
        sa.Column("thumbnail_key", sa.String(255), nullable=True),
        sa.Column("spritesheet_key", sa.String(255), nullable=True),
        sa.Column("assets_expire_at", sa.BigInteger, nullable=True),
        sa.Column("backend", sa.String(64), nullable=True),
        sa.Column("upstream_id", sa.String(255), nullable=True),
        sa.Column("next_poll_at", sa.Float, nullable=True),
        sa.Column("deadline_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_owner_idempotency"),
    )
    op.create_index("ix_tasks_owner_seq", "tasks", ["owner_id", "seq"])
    op.create_index("ix_tasks_due", "tasks", ["status", "next_poll_at"])
    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("task_id", "kind", name="uq_task_events_task_kind"),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])


def downgrade() -> None:
    op.drop_table("task_events")
    op.drop_index("ix_tasks_due", table_name="tasks")
    op.drop_index("ix_tasks_owner_seq", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("api_keys")
