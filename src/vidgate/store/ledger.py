"""Money and notifications, written inside the same transactions as task changes.

A key's `balance_micro` always equals the sum of its ledger rows: every change to one is made
together with the other. Holds are taken when a task is inserted; the settlement (refund of
what was not delivered, or of everything on failure) is written in the transaction that
moves the task to its terminal state, so it happens exactly once however many finalizers race.
(The hold itself is taken by admission.py, with the task's insert.) These are parts of
writes (store/writes.py): functions of the caller's connection, inside its transaction.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from .schema import api_keys, ledger, tasks, webhook_outbox

TOPUP = "topup"
HOLD = "hold"
REFUND = "refund"
EXTRA = "extra"  # delivered more than was held, under the operator's "charge" overage policy


class InsufficientBalance(Exception):
    """A limited key's balance is short of a hold or of a deduction."""


@dataclass(frozen=True)
class EndingFacts:
    """What settling a task and notifying its owner need, read in one statement."""

    owner_id: str
    hold: int
    balance: int | None  # None: the key has no limit (or is gone)
    webhook_url: str | None


def ending_facts(conn: sa.Connection, task_id: str) -> EndingFacts | None:
    row = conn.execute(
        sa.select(tasks.c.owner_id, tasks.c.hold_micro, api_keys.c.balance_micro,
                  api_keys.c.webhook_url)
        .select_from(tasks.outerjoin(api_keys, api_keys.c.id == tasks.c.owner_id))
        .where(tasks.c.id == task_id)).first()
    return None if row is None else EndingFacts(*row)


def settle(conn: sa.Connection, facts: EndingFacts, task_id: str, charge: int,
           charge_overage: bool = False) -> tuple[int, int]:
    """Keep `charge` of a task's hold and return the rest to its key.

    A charge above the hold is capped at the hold, unless `charge_overage` is set: then the
    difference is taken from the balance too, never more than the balance holds. Returns the
    cost recorded on the task and the amount refunded. Call only inside the terminal
    transition, with the task's facts read in it.
    """
    owner_id, hold = facts.owner_id, facts.hold
    charge = max(0, charge)
    if facts.balance is None:  # no limit: record the cost, move no money
        cost, refund, extra = charge, 0, 0
    else:
        extra = min(charge - hold, facts.balance) if charge_overage and charge > hold else 0
        cost = min(charge, hold) + extra
        refund = hold - min(charge, hold)
    for kind, amount in ((REFUND, refund), (EXTRA, -extra)):
        if amount:
            conn.execute(
                api_keys.update()
                .where(api_keys.c.id == owner_id)
                .values(balance_micro=api_keys.c.balance_micro + amount)
            )
            _ledger_row(conn, owner_id, task_id, kind, amount)
    conn.execute(tasks.update().where(tasks.c.id == task_id).values(cost_micro=cost))
    return cost, refund


def top_up(conn: sa.Connection, key_id: str, amount: int, note: str | None) -> int | None:
    """Add to a limited key's balance (a first top-up turns an unlimited key into a limited
    one); returns the new balance, or None for an unknown key."""
    current = conn.execute(
        sa.select(api_keys.c.balance_micro).where(api_keys.c.id == key_id)).first()
    if current is None:
        return None
    new_balance = (current[0] or 0) + amount
    if new_balance < 0:
        raise InsufficientBalance(f"balance would become {new_balance}")
    conn.execute(
        api_keys.update().where(api_keys.c.id == key_id).values(balance_micro=new_balance)
    )
    _ledger_row(conn, key_id, None, TOPUP, amount, note)
    return new_balance


def enqueue_webhook(conn: sa.Connection, facts: EndingFacts, task_id: str,
                    event_type: str) -> None:
    """Queue an OpenAI-shaped event for the task owner's webhook, if it has one."""
    if not facts.webhook_url:
        return
    now = int(time.time())
    event_id = "evt_" + secrets.token_hex(16)
    payload = {"id": event_id, "object": "event", "created_at": now, "type": event_type,
               "data": {"id": task_id}}
    conn.execute(
        webhook_outbox.insert().values(
            id=event_id, key_id=facts.owner_id, task_id=task_id, type=event_type,
            url=facts.webhook_url,
            payload=orjson.dumps(payload).decode(), created_at=now, next_attempt_at=time.time(),
        )
    )


def _ledger_row(conn: sa.Connection, key_id: str, task_id: str | None, kind: str,
                      amount: int, note: str | None = None) -> None:
    conn.execute(
        ledger.insert().values(
            key_id=key_id, task_id=task_id, kind=kind, amount_micro=amount,
            created_at=int(time.time()), note=note,
        )
    )
