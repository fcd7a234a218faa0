"""A partial index on unfinished tasks by owner, for the concurrency limit on PostgreSQL.

A create for a key with `max_concurrent` counts the key's unfinished tasks (admission.
ACTIVE_COUNT). Through ix_tasks_owner_seq that read every row the key ever made, finished or
not, and through the unfinished indexes of 0005 every unfinished row of every key (~8 ms per
create at 10,000 tasks in flight, bench/RESULTS.md, "Indexes at 1,000,000 tasks"). This index
holds only the unfinished, undeleted rows, by owner, which are all the count asks of a row:
it reads the key's own entries and, where the table's visibility map allows, no table page
(an index-only scan). SQLite is left as it is, as in 0005.

Revision ID: 0006_unfinished_by_owner
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_unfinished_by_owner"
down_revision = "0005_unfinished_indexes"
branch_labels = None
depends_on = None

# what admission.ACTIVE_COUNT asks, so that any query asking it can use the index
UNFINISHED_LIVE = sa.text("status IN ('queued', 'in_progress') AND deleted_at IS NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_tasks_unfinished_owner", "tasks", ["owner_id"],
                    postgresql_where=UNFINISHED_LIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_tasks_unfinished_owner", table_name="tasks")
