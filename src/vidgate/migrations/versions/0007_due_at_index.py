"""The claim's index on PostgreSQL by due time with no NULL, so that `due <= now` is a range.

0005's ix_tasks_unfinished_due (next_poll_at NULLS FIRST) let a claim read the due tasks in
order, but its condition, `next_poll_at IS NULL OR next_poll_at <= now`, could only filter
that scan, never end it: a claim that found fewer due tasks than its batch read every
unfinished row, which an engine between polls does every tick (a generic plan at 100,000 in
flight: 55 ms and 90,641 buffers, bench/RESULTS.md, "Claims on a due-time range"). On
`COALESCE(next_poll_at, 0.0)` (a NULL due time is due first, as before) the claim's
condition is the index's range and the scan ends at the first task not yet due. The claim
of tasks still waiting for a channel (`submit=True`, with channel caps) gets its own,
over the waiting tasks only: on the index of all unfinished tasks the planner read every
unfinished row and sorted (30-40 ms at 100,000 in flight with 10,000 waiting). And 0005's
ix_tasks_unfinished_backend now holds only the tasks with a channel, all its readers ask
for (a channel's places, the jobs in flight per channel): as an index of every unfinished
row, heap-ordered, it was the generic plan's pick for the claim of any due tasks, read whole
and sorted (17 ms with none due; a prepared claim's limit is a parameter, so the planner
guesses it reads a tenth of the due rows in order, about what reading them all costs).
SQLite is left as it is, as in 0005.

Revision ID: 0007_due_at_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_due_at_index"
down_revision = "0006_unfinished_by_owner"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('queued', 'in_progress')")
WAITING = sa.text("status IN ('queued', 'in_progress') AND upstream_id IS NULL")
BOUND = sa.text("status IN ('queued', 'in_progress') AND backend IS NOT NULL")
DUE_AT = sa.text("COALESCE(next_poll_at, 0.0)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_tasks_unfinished_due_at", "tasks", [DUE_AT],
                    postgresql_where=UNFINISHED)
    op.create_index("ix_tasks_waiting_due_at", "tasks", [DUE_AT], postgresql_where=WAITING)
    op.drop_index("ix_tasks_unfinished_due", table_name="tasks")
    op.drop_index("ix_tasks_unfinished_backend", table_name="tasks")
    op.create_index("ix_tasks_unfinished_backend", "tasks", ["backend"], postgresql_where=BOUND)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_tasks_unfinished_due", "tasks",
                    [sa.text("next_poll_at ASC NULLS FIRST")], postgresql_where=UNFINISHED)
    op.drop_index("ix_tasks_unfinished_backend", table_name="tasks")
    op.create_index("ix_tasks_unfinished_backend", "tasks", ["backend"],
                    postgresql_where=UNFINISHED)
    op.drop_index("ix_tasks_waiting_due_at", table_name="tasks")
    op.drop_index("ix_tasks_unfinished_due_at", table_name="tasks")
