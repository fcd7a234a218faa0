"""Tasks: the hash of the canonical request made with an idempotency key, so that the same
key with a different request is refused (409) instead of answered with the first task.

Revision ID: 0003_request_hash
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_request_hash"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("request_hash")
