"""Partial indexes on unfinished tasks, for the engine at scale on PostgreSQL.

With a million task rows, most of them finished, each claim scanned every unfinished row
through ix_tasks_due (status, next_poll_at) and sorted them, since an IN on two statuses
gives no single order by next poll (bench/RESULTS.md, "Indexes at 1,000,000 tasks"). An
index of unfinished rows in next-poll order lets a claim read the first due rows and stop;
one by channel serves the in-flight counts. SQLite is left as it is: one file has one
engine's claims at a time, and its planner cannot match a partial index to the statuses
sent as parameters.

Revision ID: 0005_unfinished_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_unfinished_indexes"
down_revision = "0004_characters"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('queued', 'in_progress')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_tasks_unfinished_due", "tasks",
                    [sa.text("next_poll_at ASC NULLS FIRST")], postgresql_where=UNFINISHED)
    op.create_index("ix_tasks_unfinished_backend", "tasks", ["backend"],
                    postgresql_where=UNFINISHED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_tasks_unfinished_backend", table_name="tasks")
    op.drop_index("ix_tasks_unfinished_due", table_name="tasks")
