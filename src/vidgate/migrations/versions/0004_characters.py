"""Characters: short clips a key stores to appear in its videos (`/v1/videos/characters`).

Revision ID: 0004_characters
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_characters"
# The head when this was written; a parallel branch may add 0003 (the merge re-points this).
down_revision = "0003_request_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "characters",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("clip_key", sa.String(255), nullable=False),
        sa.Column("upstreams", sa.JSON, nullable=False),
    )
    op.create_index("ix_characters_owner_name", "characters", ["owner_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_characters_owner_name", table_name="characters")
    op.drop_table("characters")
