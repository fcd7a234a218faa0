"""Table definitions (SQLAlchemy Core). Alembic migrations in vidgate/migrations mirror these."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    # accounts (migration 0002): a null balance means no limit, as self-hosters want
    sa.Column("balance_micro", sa.BigInteger, nullable=True),
    sa.Column("rpm_limit", sa.Integer, nullable=True),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    sa.Column("allowed_models", sa.JSON, nullable=True),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_secret", sa.String(128), nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    # seq gives a total order for listing and paging; id is the public name.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    # sha256 of the canonical request made with the idempotency key (migration 0003)
    sa.Column("request_hash", sa.String(64), nullable=True),
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
    sa.Column("hold_micro", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_micro", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_owner_idempotency"),
    sa.Index("ix_tasks_owner_seq", "owner_id", "seq"),
    sa.Index("ix_tasks_due", "status", "next_poll_at"),
)

# PostgreSQL only (migrations 0005-0007): unfinished tasks by due time (the claims), by
# channel (jobs in flight) and by owner (a key's concurrency limit, deleted rows left out
# too, so its count needs nothing beyond the index), so none reads the finished rows.
_UNFINISHED = sa.text("status IN ('queued', 'in_progress')")
# A task's due time with no NULL (a called-back task whose lease ran out before its
# hand-back: due first, with the other called-back tasks), the order the claims read. Their
# `DUE_AT <= now` is a range of these indexes, where `next_poll_at IS NULL OR next_poll_at
# <= now` was a filter of 0005's `ix_tasks_unfinished_due`: a claim that found fewer due
# tasks than its batch read every unfinished row (55 ms at 100,000 in flight,
# bench/RESULTS.md, "Claims on a due-time range"), and an engine claims every tick.
DUE_AT = sa.func.coalesce(tasks.c.next_poll_at, sa.literal_column("0.0"))
sa.Index("ix_tasks_unfinished_due_at", DUE_AT, postgresql_where=_UNFINISHED)
# ...and of the tasks still waiting for a channel, for the claim of those alone (submit=True)
sa.Index("ix_tasks_waiting_due_at", DUE_AT,
         postgresql_where=sa.text(f"{_UNFINISHED.text} AND upstream_id IS NULL"))
# ...of the tasks with a channel, by channel: not an index of every unfinished row, which a
# claim's generic plan would read whole instead of the due time's range (migration 0007)
sa.Index("ix_tasks_unfinished_backend", tasks.c.backend,
         postgresql_where=sa.text(f"{_UNFINISHED.text} AND backend IS NOT NULL"))
sa.Index("ix_tasks_unfinished_owner", tasks.c.owner_id,
         postgresql_where=sa.text(f"{_UNFINISHED.text} AND deleted_at IS NULL"))

# Append-only record of what happened to a task; one row per terminal transition, which is
# what "exactly once" is checked against, and the seed of the webhook outbox.
task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(40), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("task_id", "kind", name="uq_task_events_task_kind"),
)

# Every movement of a key's balance. The balance column equals the sum of these rows; the
# unique (task_id, kind) makes each task's hold and settlement happen at most once.
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(40), nullable=False, index=True),
    sa.Column("task_id", sa.String(40), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),  # topup | hold | refund
    sa.Column("amount_micro", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),
)

# Durable webhook outbox: written in the same transaction as the terminal transition.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # evt_..., also the webhook-id header
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
    sa.Index("ix_webhook_due", "delivered_at", "next_attempt_at"),
)

# Characters (migration 0004): a short clip a key stored to appear in its videos. `upstreams`
# maps a channel name to the id the channel gave the same clip (forwarded at creation).
characters = sa.Table(
    "characters",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("clip_key", sa.String(255), nullable=False),
    sa.Column("upstreams", sa.JSON, nullable=False),
    sa.Index("ix_characters_owner_name", "owner_id", "name"),
)
