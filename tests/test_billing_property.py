"""Property test of the money rules, on the real store (SQLite or PostgreSQL).

Random sequences of create / complete with other seconds / fail / cancel / delete / top-up,
under both overage policies: the balance always equals the sum of the ledger, never goes
below zero, a failed task costs nothing, and a completed one costs what was delivered, at
most its hold (or, with the "charge" policy, at most its hold plus what the balance had).

It runs on the built-in catalog and on one with two models declared in vidgate.yaml; holds
and charges are checked against the price tables below, written out independently of the
catalog's code.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from support import fresh_database_url
from vidgate.catalog import Catalog, RawVideoRequest
from vidgate.channels import load_config
from vidgate.domain import COMPLETED, FAILED, QUEUED, Task, new_task_id
from vidgate.store.admission import ConcurrencyLimitReached
from vidgate.store.database import Database
from vidgate.store.ledger import InsufficientBalance
from vidgate.store.schema import tasks

# (pixels up to, USD per second) per model; None: any larger size. Spec section 3 for the
# built-ins, the YAML below for the declared ones.
BUILTIN_PRICES = {
    "sora-2": [(1280 * 720, 0.10), (None, 0.30)],
    "sora-2-pro": [(1280 * 720, 0.30), (1792 * 1024, 0.50), (None, 0.70)],
}
DECLARED_YAML = """
models:
  - name: veo-3.1
    sizes: ["1280x720", "720x1280", "1920x1080", "1080x1920"]
    seconds: [4, 6, 8]
    prices:
      - {max_size: "1280x720", usd_per_second: 0.15}
      - {usd_per_second: 0.40}
    aliases: ["veo-3.1-generate-preview"]
  - name: wan-2.2
    sizes: ["848x480", "480x848", "1280x720", "960x960", "1920x1080"]
    seconds: [3, 5, 9]
    prices:
      - {max_size: "848x480", usd_per_second: 0.0333}
      - {max_size: "960x960", usd_per_second: 0.071}
      - {usd_per_second: 0.1999}
"""
DECLARED_PRICES = {
    **BUILTIN_PRICES,
    "veo-3.1": [(1280 * 720, 0.15), (None, 0.40)],
    "wan-2.2": [(848 * 480, 0.0333), (960 * 960, 0.071), (None, 0.1999)],
}


def expected_price(prices, model, width, height, seconds) -> int:
    """The price table's answer in micro-USD: whole seconds (nearest, at least one)."""
    usd = next(usd for limit, usd in prices[model] if limit is None or width * height <= limit)
    return round(usd * 1_000_000) * max(1, round(seconds))


@pytest.fixture(params=["built-in", "declared"])
def catalog_and_prices(request, tmp_path):
    if request.param == "built-in":
        return Catalog(), BUILTIN_PRICES
    path = tmp_path / "vidgate.yaml"
    path.write_text(DECLARED_YAML)
    catalog = load_config(path).catalog
    assert set(catalog.models) == set(DECLARED_PRICES)
    return catalog, DECLARED_PRICES


@pytest.fixture(scope="module")
def loop_and_db(tmp_path_factory):
    url, cleanup = fresh_database_url(tmp_path_factory.mktemp("prop"))
    loop = asyncio.new_event_loop()
    db = Database(url)
    loop.run_until_complete(db.migrate())
    yield loop, db
    loop.run_until_complete(db.close())
    loop.close()
    cleanup()


def make_machine(loop, db, catalog, prices):
    accounts = db.keys
    names = list(catalog.models) + [a for m in catalog.models.values() for a in m.aliases]

    class Billing(RuleBasedStateMachine):
        @initialize(start=st.integers(0, 5_000_000), overage=st.booleans())
        def start(self, start, overage):
            db.leases.charge_overage = overage  # the operator's policy for videos longer than held
            self.key, _ = run(db.create_key("prop", balance_micro=start))
            self.open: list[str] = []
            self.finished: dict[str, str] = {}

        @rule(data=st.data(), name=st.sampled_from(names))
        def create(self, data, name):
            model = catalog.get(name)
            size = data.draw(st.sampled_from(model.sizes))
            seconds = data.draw(st.sampled_from(model.seconds))
            req = catalog.normalize(RawVideoRequest(prompt="p", model=name, size=size,
                                                    seconds=seconds))
            assert req.model == model.name  # an alias is stored as the model it stands for
            hold = catalog.price(req)
            assert hold == expected_price(prices, model.name, req.width, req.height, seconds)
            now = time.time()
            task = Task(id=new_task_id(), owner_id=self.key.id, family="videos",
                        model=req.model, prompt=req.prompt, width=req.width,
                        height=req.height, seconds=req.seconds, seed=0, status=QUEUED,
                        progress=0, created_at=int(now), status_updated_at=int(now),
                        deadline_at=now + 3600, backend="sandbox", next_poll_at=now,
                        hold_micro=hold)
            before = balance(self.key.id)
            try:
                run(db.tasks.insert(task))
            except InsufficientBalance:
                assert before < task.hold_micro
                assert run(db.get_task(task.id)) is None
                return
            except ConcurrencyLimitReached:  # not configured here
                raise
            self.open.append(task.id)

        @rule(data=st.data(), delivered=st.floats(0.5, 30))
        def complete(self, data, delivered):
            task_id = self._pick(data)
            if task_id is None:
                return
            task = run(db.get_task(task_id))
            charge = catalog.settlement_price(task, delivered)
            assert charge == expected_price(prices, task.model, task.width, task.height,
                                            delivered)
            before = balance(self.key.id)
            if self._finish(task_id, COMPLETED, charge, delivered_seconds=delivered):
                got = run(db.get_task(task_id))
                extra = 0
                if db.leases.charge_overage and charge > task.hold_micro:
                    extra = min(charge - task.hold_micro, before)
                assert got.cost_micro == min(charge, task.hold_micro) + extra
                assert balance(self.key.id) == before + task.hold_micro - got.cost_micro

        @rule(data=st.data())
        def fail(self, data):
            task_id = self._pick(data)
            if task_id is not None:
                self._finish(task_id, FAILED, 999_999_999, error_code="upstream_error")

        @rule(data=st.data(), delete=st.booleans())
        def cancel(self, data, delete):
            task_id = self._pick(data)
            if task_id is None:
                return
            if delete:
                run(db.tasks.mark_deleted(task_id, self.key.id))
            self._finish(task_id, FAILED, 0, error_code="cancelled")

        @rule(amount=st.integers(-3_000_000, 3_000_000))
        def top_up(self, amount):
            before = balance(self.key.id)
            try:
                after = run(accounts.top_up(self.key.id, amount, "prop"))
            except InsufficientBalance:
                assert before + amount < 0
                return
            assert after == before + amount

        @rule(data=st.data())
        def finish_twice(self, data):
            """A second finalizer of an already finished task changes nothing."""
            if not self.finished:
                return
            task_id = data.draw(st.sampled_from(sorted(self.finished)))
            before = balance(self.key.id)
            assert not run(db.leases.finish_leased(task_id, "w2", COMPLETED, charge_micro=1))
            assert balance(self.key.id) == before

        def _pick(self, data):
            if not self.open:
                return None
            return self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))

        def _finish(self, task_id, status, charge, **values):
            now = time.time()
            claimed = run(db.leases.claim_due("w1", now + 10, now + 60, 1000))
            assert task_id in {t.id for t in claimed}
            won = run(db.leases.finish_leased(task_id, "w1", status, charge_micro=charge,
                                       completed_at=int(now), **values))
            assert won
            for t in claimed:  # release the others untouched
                if t.id != task_id:
                    run(db.leases.update_leased(t.id, "w1", lease_owner=None, lease_until=None))
            self.finished[task_id] = status
            return won

        @invariant()
        def balance_is_ledger_sum_and_never_negative(self):
            if not hasattr(self, "key"):
                return
            b = balance(self.key.id)
            assert b == run(accounts.ledger_sum(self.key.id))
            assert b >= 0

        @invariant()
        def failed_tasks_cost_nothing(self):
            if not getattr(self, "finished", None):
                return
            for task_id, status in self.finished.items():
                cost = cost_of(task_id)
                if status == FAILED:
                    assert cost == 0
                else:
                    assert cost is not None and cost >= 0

    def run(coro):
        return loop.run_until_complete(coro)

    def balance(key_id):
        return run(accounts.get(key_id)).balance_micro

    def cost_of(task_id):
        async def read():
            async with db.engine.connect() as conn:
                return (await conn.execute(sa.select(tasks.c.cost_micro)
                                           .where(tasks.c.id == task_id))).scalar()
        return run(read())

    return Billing


def test_money_rules_hold_for_any_sequence(loop_and_db, catalog_and_prices):
    loop, db = loop_and_db
    machine = make_machine(loop, db, *catalog_and_prices)
    machine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine.TestCase().runTest()
