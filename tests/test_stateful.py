"""A stateful model test: random sequences of API calls against a Python model of the ledger.

Each run opens its own ledger and drives the real HTTP API: accounts with and without
overdraft limits, transfers of 1-3 postings (amounts from 1 to 2**128 - 1, up to the edge
of NUMERIC(39,0)), pending transactions (posted in full or in part, voided), reversals,
batches (atomic or not) and Idempotency-Key replays. The model predicts every answer
(status and problem code) and every balance; rejected requests must leave the ledger
untouched, and the double-entry invariants hold after every step.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import Server, Tenant, assert_ledger_invariants, ledger_snapshot, new_tenant

CURRENCIES = ("USD", "EUR")
MAX_AMOUNT = 2**128 - 1  # the API's bound on one amount
# 39 digits: where NUMERIC(39, 0) would end. Balances are unbounded NUMERIC, so runs push
# totals across it to prove that nothing overflows (amounts stay within 2**128 - 1).
MAX_NUMERIC = 10**39 - 1
HUGE = 2**127
EXTERNAL_IDS = ("ext-a", "ext-b", "ext-c")


@dataclass
class Account:
    id: str
    code: str
    currency: str
    normal: str
    limit: int | None
    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0
    version: int = 0

    def __repr__(self) -> str:
        return f"Account({self.code!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis prints a drawn account in a failing sequence: its code only."""
        printer.text(repr(self))

    def components(self) -> tuple[int, int, int, int]:
        return (self.posted_debits, self.posted_credits, self.pending_debits, self.pending_credits)

    def posted(self) -> int:
        return posted_of(self.normal, self.posted_debits, self.posted_credits)

    def available(self) -> int:
        return available_of(
            self.normal,
            self.posted_debits,
            self.posted_credits,
            self.pending_debits,
            self.pending_credits,
        )

    def balance(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "posted": self.posted(),
            "available": self.available(),
            "pending_debits": self.pending_debits,
            "pending_credits": self.pending_credits,
            "posted_debits": self.posted_debits,
            "posted_credits": self.posted_credits,
            "version": self.version,
        }


def posted_of(normal: str, debits: int, credits: int) -> int:
    return credits - debits if normal == "credit" else debits - credits


def available_of(normal: str, pd: int, pc: int, qd: int, qc: int) -> int:
    return posted_of(normal, pd, pc) - (qd if normal == "credit" else qc)


@dataclass
class Posting:
    debit: str  # account ids
    credit: str
    amount: int
    posted_amount: int | None

    def out(self) -> dict[str, Any]:
        return {
            "debit": self.debit,
            "credit": self.credit,
            "amount": self.amount,
            "posted_amount": self.posted_amount,
        }


@dataclass
class Transaction:
    id: str
    status: str
    postings: list[Posting]
    description: str | None = None
    external_id: str | None = None
    reverses_id: str | None = None
    reversed_by_id: str | None = None

    def __repr__(self) -> str:
        return f"Transaction({self.id!r}, {self.status!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass
class Draft:
    """A transaction as the model sees it before sending: accounts (None: unknown)."""

    postings: list[tuple[Account | None, Account | None, int]]
    pending: bool
    external_id: str | None


@dataclass
class Sent:
    """A request sent with an Idempotency-Key, and the answer it got."""

    key: str
    path: str
    body: dict[str, Any] | None
    status: int
    content: bytes

    def __repr__(self) -> str:
        return f"Sent({self.key!r}, POST {self.path}, {self.body!r} -> {self.status})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


# Balance components by account id: (posted_debits, posted_credits, pending_debits,
# pending_credits).
Balances = dict[str, tuple[int, int, int, int]]

# A leg of money movement as the SQL engine applies it: (debit id, credit id, posted, pending)
# where pending > 0 reserves and pending < 0 releases.
Leg = tuple[str, str, int, int]


@dataclass
class Outcome:
    """What the model predicts for a request: success, or (status, code). When a request
    breaks two rules checked at the same stage, which one is reported is not part of the
    contract: `alternatives` are accepted too."""

    status: int
    code: str | None = None
    alternatives: tuple[str, ...] = ()
    new_balances: Balances = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    admin: ClassVar[httpx.Client]
    server: ClassVar[Server]
    db: ClassVar[psycopg.Connection[Any]]

    def __init__(self) -> None:
        super().__init__()
        self.tenant: Tenant | None = None
        self.accounts: dict[str, Account] = {}  # by id, in creation order
        self.transactions: dict[str, Transaction] = {}
        self.sent: list[Sent] = []
        self.counter = 0
        self.touched: set[str] = set()  # accounts whose history the next check walks

    # ---------------------------------------------------------------- plumbing

    @property
    def client(self) -> httpx.Client:
        assert self.tenant is not None
        return self.tenant.client

    @property
    def ledger_id(self) -> str:
        assert self.tenant is not None
        return self.tenant.ledger_id

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def snapshot(self) -> dict[str, Any]:
        return ledger_snapshot(self.db, self.ledger_id)

    def send(
        self, path: str, body: dict[str, Any] | None, keyed: bool, expected: Outcome
    ) -> httpx.Response:
        """POST, check the status and code the model predicted, and that a rejection
        changed nothing (but the stored Idempotency-Key of a rejection replayed later)."""
        key = self.fresh("key") if keyed else None
        headers = {"Idempotency-Key": key} if key else {}
        before = self.snapshot()
        response = self.client.post(path, json=body, headers=headers)
        assert response.status_code == expected.status, (
            f"POST {path} {body}: expected {expected.status} {expected.code}, "
            f"got {response.status_code} {response.text}"
        )
        validation = False
        if expected.code is not None:
            problem = response.json()
            assert problem["code"] in (expected.code, *expected.alternatives), response.text
            assert problem["status"] == expected.status, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            validation = expected.code == "validation_error"
            if key is not None and not validation:
                count = before["idempotency_keys"][0]
                before["idempotency_keys"] = (count + 1,)
            assert self.snapshot() == before, f"rejected POST {path} {body} changed the ledger"
        if key is not None and not validation:
            self.sent.append(Sent(key, path, body, response.status_code, response.content))
        return response

    @staticmethod
    def one_in(data: st.DataObject, n: int, label: str) -> bool:
        """True with probability about 1/n (sampled_from: integer draws favour their bounds)."""
        choices = [False] * n
        choices[n // 2] = True  # away from the ends, which draws favour
        return data.draw(st.sampled_from(choices), label=label)

    def ref(self, data: st.DataObject, account: Account) -> str:
        """Postings name an account by id or by code."""
        return account.id if data.draw(st.booleans(), label="by id") else account.code

    def amount_for(
        self, data: st.DataObject, debit: Account, pending: bool, careful: bool = False
    ) -> int:
        """Small, or at the edge of what the debit account may spend, or near 2**127, or
        what takes the debit account's total to the edge of NUMERIC(39,0)."""
        room = debit.available() + (debit.limit if debit.limit is not None else 0)
        kinds = ["small", "room", "huge", "small", "part of room", "small"]
        if debit.limit is None:  # a source of money: often huge, to reach 128-bit totals
            kinds = ["small", "huge", "range edge", "huge", "small"]
        if careful:
            kinds = ["small"] if debit.limit is None else ["part of room"]
        kind = data.draw(st.sampled_from(kinds), label="amount kind")
        if kind == "room":
            amount = room + data.draw(st.sampled_from([-1, 0, 1]), label="room +")
        elif kind == "part of room":
            amount = data.draw(st.integers(1, max(room // 2, 1)), label="part")
        elif kind == "range edge":
            total = debit.pending_debits if pending else debit.posted_debits
            amount = MAX_NUMERIC - total + data.draw(st.sampled_from([-1, 0, 1]), label="edge +")
        elif kind == "huge":
            amount = data.draw(
                st.sampled_from([HUGE - 1, HUGE, MAX_AMOUNT, HUGE + 1]), label="huge"
            )
        else:
            amount = data.draw(st.integers(1, 1000), label="small")
        return min(max(amount, 1), MAX_AMOUNT)

    def encode(self, data: st.DataObject, amount: int) -> int | str:
        """Amounts are JSON integers; digit strings are accepted too."""
        return str(amount) if self.one_in(data, 5, "as string") else amount

    # ---------------------------------------------------------------- the model's rules

    def predict_legs(self, legs: list[Leg], running: Balances | None = None) -> Outcome:
        """Apply legs as the ledger does: deltas aggregated per account; a balance component
        beyond NUMERIC(39,0) is out of range; an account with a limit that ends below -limit
        while losing availability makes the whole transaction fail.
        `running`: balances as earlier items of the same batch left them."""
        running = running or {}
        deltas: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for debit, credit, posted, pending in legs:
            if posted:
                deltas[debit][0] += posted
                deltas[credit][1] += posted
            if pending:
                deltas[debit][2] += pending
                deltas[credit][3] += pending
        new: Balances = {}
        for account_id, (dpd, dpc, dqd, dqc) in deltas.items():
            pd, pc, qd, qc = running.get(account_id) or self.accounts[account_id].components()
            after = (pd + dpd, pc + dpc, qd + dqd, qc + dqc)
            assert min(after) >= 0, "model bug: a negative balance component"
            new[account_id] = after
        broken = []
        for account_id, after in new.items():
            a = self.accounts[account_id]
            loses = available_of(a.normal, *deltas[account_id]) < 0
            if a.limit is not None and loses and available_of(a.normal, *after) < -a.limit:
                broken.append("insufficient_funds")
                break
        if broken:
            return Outcome(422, broken[0], tuple(broken[1:]))
        return Outcome(0, None, new_balances=new)

    def commit(self, balances: Balances) -> None:
        """Balances written by one transaction (or one batch): each account's version grows
        by one."""
        for account_id, (pd, pc, qd, qc) in balances.items():
            a = self.accounts[account_id]
            a.posted_debits, a.posted_credits = pd, pc
            a.pending_debits, a.pending_credits = qd, qc
            a.version += 1
            self.touched.add(account_id)

    def external_id_taken(self, external_id: str | None, also: set[str] | None = None) -> bool:
        return external_id is not None and (
            external_id in (also or set())
            or any(t.external_id == external_id for t in self.transactions.values())
        )

    def check_transaction(self, body: dict[str, Any], expected: Transaction) -> None:
        assert body["id"] == expected.id
        assert body["ledger_id"] == self.ledger_id
        assert body["status"] == expected.status
        assert body["postings"] == [p.out() for p in expected.postings]
        assert body["description"] == expected.description
        assert body["external_id"] == expected.external_id
        assert body["reverses_id"] == expected.reverses_id
        assert body["reversed_by_id"] == expected.reversed_by_id

    def pick_transaction(self, data: st.DataObject, wanted: str) -> Transaction | None:
        """Mostly one in the wanted state, sometimes any, rarely an unknown id (None)."""
        choice = data.draw(
            st.sampled_from(["wanted", "any", "wanted", "unknown", "wanted", "any", "wanted"]),
            label="which transaction",
        )
        if choice == "unknown" or not self.transactions:
            return None
        matching = [t for t in self.transactions.values() if t.status == wanted]
        if choice == "wanted" and matching:
            return data.draw(st.sampled_from(matching), label="transaction")
        return data.draw(st.sampled_from(list(self.transactions.values())), label="transaction")

    # ---------------------------------------------------------------- rules

    @initialize()
    def open_ledger(self) -> None:
        self.tenant = new_tenant(self.admin, self.server)
        # A source of money in each currency, like a bank's cash account.
        for currency in CURRENCIES:
            self.make_account(f"mint-{currency.lower()}", currency, "debit", None, keyed=False)
        # A few accounts with limits to move money between from the first step on.
        self.make_account("alice", "USD", "credit", 0, keyed=False)
        self.make_account("bob", "USD", "credit", 50, keyed=False)
        self.make_account("eve", "EUR", "credit", 0, keyed=False)
        self.make_account("asset", "EUR", "debit", 0, keyed=False)

    def make_account(
        self, code: str, currency: str, normal: str, limit: int | None, keyed: bool
    ) -> None:
        body = {
            "ledger_id": self.ledger_id,
            "code": code,
            "currency": currency,
            "normal_balance": normal,
            "overdraft_limit": limit,
        }
        if any(a.code == code for a in self.accounts.values()):
            self.send("/v1/accounts", body, keyed, Outcome(409, "duplicate_account_code"))
            return
        response = self.send("/v1/accounts", body, keyed, Outcome(201))
        made = response.json()
        account = Account(made["id"], code, currency, normal, limit)
        assert made["code"] == code
        assert made["currency"] == currency
        assert made["normal_balance"] == normal
        assert made["overdraft_limit"] == limit
        assert made["balance"] == account.balance()
        self.accounts[account.id] = account

    @rule(
        data=st.data(),
        currency=st.sampled_from(CURRENCIES),
        normal=st.sampled_from(["credit", "debit"]),
        limit=st.one_of(st.just(0), st.integers(1, 1000), st.none()),
        keyed=st.booleans(),
    )
    def create_account(
        self, data: st.DataObject, currency: str, normal: str, limit: int | None, keyed: bool
    ) -> None:
        if self.one_in(data, 10, "duplicate code"):
            code = data.draw(st.sampled_from([a.code for a in self.accounts.values()]))
        else:
            code = self.fresh(f"{normal}-{currency.lower()}")
        self.make_account(code, currency, normal, limit, keyed)

    def draft(
        self, data: st.DataObject, pending: bool, careful: bool = False
    ) -> tuple[dict[str, Any], Draft]:
        """A random transaction body (without ledger_id) and what the model makes of it.
        A careful one is likely to go through: funded accounts, modest amounts."""
        accounts = list(self.accounts.values())
        n = data.draw(st.integers(1, 3), label="postings")
        postings: list[dict[str, Any]] = []
        resolved: list[tuple[Account | None, Account | None, int]] = []
        for _ in range(n):
            # Mostly an account with something to spend, so that transfers go through.
            funded = [a for a in accounts if a.limit is None or a.available() + a.limit > 0]
            if funded and (careful or not self.one_in(data, 4, "any debit account")):
                debit = data.draw(st.sampled_from(funded), label="debit")
            else:
                debit = data.draw(st.sampled_from(accounts), label="debit")
            others = [a for a in accounts if a.currency == debit.currency and a is not debit]
            if others and (careful or not self.one_in(data, 10, "any credit account")):
                credit = data.draw(st.sampled_from(others), label="credit")
            else:  # possibly the same account, or another currency
                credit = data.draw(st.sampled_from(accounts), label="credit")
            amount = self.amount_for(data, debit, pending, careful)
            debit_ref, credit_ref = self.ref(data, debit), self.ref(data, credit)
            ghost = not careful and self.one_in(data, 30, "unknown account")
            postings.append(
                {
                    "debit": debit_ref,
                    "credit": "ghost" if ghost else credit_ref,
                    "amount": self.encode(data, amount),
                }
            )
            resolved.append((debit, None if ghost else credit, amount))
        body: dict[str, Any] = {"postings": postings}
        if pending:
            body["pending"] = True
        external_id = None
        if not careful and self.one_in(data, 4, "external id"):
            external_id = data.draw(st.sampled_from(EXTERNAL_IDS))
            body["external_id"] = external_id
        return body, Draft(resolved, pending, external_id)

    def create_transaction(self, data: st.DataObject, pending: bool) -> None:
        self.submit(data, *self.draft(data, pending))

    def submit(self, data: st.DataObject, body: dict[str, Any], draft: Draft) -> None:
        body = {"ledger_id": self.ledger_id, **body}
        keyed = data.draw(st.booleans(), label="keyed")
        expected = self.predict_create(draft)
        response = self.send("/v1/transactions", body, keyed, expected)
        if expected.code is not None:
            return
        self.commit(expected.new_balances)
        self.created(response.json(), draft)

    def created(self, made: dict[str, Any], draft: Draft) -> None:
        """Check a created transaction against its draft and add it to the model."""
        tx = Transaction(
            made["id"],
            "pending" if draft.pending else "posted",
            [
                Posting(d.id, c.id, amount, None if draft.pending else amount)
                for d, c, amount in draft.postings
                if d is not None and c is not None
            ],
            external_id=draft.external_id,
        )
        self.check_transaction(made, tx)
        self.transactions[tx.id] = tx

    def predict_create(
        self, draft: Draft, running: Balances | None = None, taken: set[str] | None = None
    ) -> Outcome:
        """As the ledger's engine judges a transaction (alone, or as a batch item): its
        external id, then the first posting that cannot move money (unknown account, same
        account, two currencies), then the balances. `running` and `taken`: what earlier
        items of the same batch did (balances, external ids)."""
        if self.external_id_taken(draft.external_id, taken):
            return Outcome(409, "duplicate_external_id")
        legs: list[Leg] = []
        for d, c, amount in draft.postings:
            if d is None or c is None:
                return Outcome(422, "account_not_found")
            if d.id == c.id:
                return Outcome(422, "same_account")
            if d.currency != c.currency:
                return Outcome(422, "currency_mismatch")
            legs.append((d.id, c.id, 0, amount) if draft.pending else (d.id, c.id, amount, 0))
        outcome = self.predict_legs(legs, running)
        if outcome.code is None:
            outcome.status = 201
        return outcome

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        self.create_transaction(data, pending=False)

    @rule(data=st.data())
    def create_pending(self, data: st.DataObject) -> None:
        self.create_transaction(data, pending=True)

    @rule(data=st.data())
    def move_huge(self, data: st.DataObject) -> None:
        """Toward the top of the 128-bit range: as much as one posting may move (or what
        takes the total exactly to the edge of NUMERIC(39,0)) out of an unlimited USD
        account, so that totals reach that edge within a run."""
        usd = [a for a in self.accounts.values() if a.currency == "USD"]
        debit = data.draw(st.sampled_from([a for a in usd if a.limit is None]), label="debit")
        credit = data.draw(st.sampled_from([a for a in usd if a != debit]), label="credit")
        edge = MAX_NUMERIC - debit.posted_debits
        amount = min(edge + data.draw(st.sampled_from([-1, 0, 1]), label="edge +"), MAX_AMOUNT)
        amount = max(amount, 1)
        posting = {
            "debit": self.ref(data, debit),
            "credit": self.ref(data, credit),
            "amount": self.encode(data, amount),
        }
        self.submit(data, {"postings": [posting]}, Draft([(debit, credit, amount)], False, None))

    @rule(data=st.data(), atomic=st.booleans(), keyed=st.booleans())
    def batch(self, data: st.DataObject, atomic: bool, keyed: bool) -> None:
        """POST /v1/transactions/batch: items applied in order against running balances,
        each judged as it would be alone; atomic = all or none (the first failure, with
        its index), otherwise one result per item."""
        n = data.draw(st.integers(1, 4), label="items")
        items, drafts = [], []
        for _ in range(n):
            pending = self.one_in(data, 3, "pending item")
            careful = not self.one_in(data, 6, "careless item")
            item, draft = self.draft(data, pending, careful)
            items.append(item)
            drafts.append(draft)
        running: Balances = {}
        taken: set[str] = set()
        outcomes = []
        for draft in drafts:
            outcome = self.predict_create(draft, running, taken)
            if outcome.code is None:
                running.update(outcome.new_balances)
                if draft.external_id is not None:
                    taken.add(draft.external_id)
            outcomes.append(outcome)
        body = {"ledger_id": self.ledger_id, "atomic": atomic, "transactions": items}
        failures = [i for i, o in enumerate(outcomes) if o.code is not None]
        if atomic and failures:
            first = outcomes[failures[0]]
            response = self.send("/v1/transactions/batch", body, keyed, first)
            assert response.json()["index"] == failures[0], response.text
            return

        response = self.send("/v1/transactions/batch", body, keyed, Outcome(201 if atomic else 200))
        got = response.json()
        assert got["atomic"] == atomic
        assert (got["succeeded"], got["failed"]) == (n - len(failures), len(failures)), got
        assert [r["index"] for r in got["results"]] == list(range(n))
        self.commit(running)
        for result, draft, outcome in zip(got["results"], drafts, outcomes, strict=True):
            if outcome.code is None:
                assert result["status"] == 201, result
                self.created(result["transaction"], draft)
            else:
                assert result["status"] == outcome.status, (outcome, result)
                assert result["error"]["code"] == outcome.code, (outcome, result)
                assert result["error"]["status"] == outcome.status, (outcome, result)

    @precondition(lambda self: self.transactions)
    @rule(data=st.data(), keyed=st.booleans())
    def post_pending(self, data: st.DataObject, keyed: bool) -> None:
        tx = self.pick_transaction(data, "pending")
        tx_id = tx.id if tx is not None else str(uuid.uuid4())
        reserved = [p.amount for p in tx.postings] if tx is not None else [1]
        form = data.draw(st.sampled_from(["full", "amount", "zero", "too much", "amounts", "full"]))
        body: dict[str, Any] | None = None
        settled: list[int] | None = list(reserved)
        if form == "amount":
            amount = data.draw(st.integers(1, reserved[0]), label="settle")
            body = {"amount": self.encode(data, amount)}
            settled = [amount] if len(reserved) == 1 else None
        elif form == "amounts":
            settled = [data.draw(st.integers(0, r), label="settle") for r in reserved]
            if self.one_in(data, 5, "wrong count"):
                settled = [*settled, 1] if len(settled) == 1 else settled[1:]
            body = {"amounts": settled}
            if len(settled) != len(reserved) or not any(settled):
                settled = None
        elif form == "too much":
            body = {"amount": reserved[0] + 1}
            settled = None
        elif form == "zero":
            body = {"amount": 0}

        if form == "zero" or (form == "too much" and reserved[0] + 1 > MAX_AMOUNT):
            expected = Outcome(422, "validation_error")
        elif tx is None:
            expected = Outcome(404, "not_found")
        elif tx.status != "pending":
            expected = Outcome(409, "transaction_not_pending")
        elif settled is None:
            expected = Outcome(422, "invalid_post_amount")
        else:
            legs = [
                (p.debit, p.credit, s, -p.amount) for p, s in zip(tx.postings, settled, strict=True)
            ]
            expected = self.predict_legs(legs)
            if expected.code is None:
                expected.status = 200
        response = self.send(f"/v1/transactions/{tx_id}/post", body, keyed, expected)
        if expected.code is not None:
            return
        assert tx is not None
        assert settled is not None
        self.commit(expected.new_balances)
        tx.status = "posted"
        for p, s in zip(tx.postings, settled, strict=True):
            p.posted_amount = s
        self.check_transaction(response.json(), tx)

    @precondition(lambda self: self.transactions)
    @rule(data=st.data(), keyed=st.booleans())
    def void_pending(self, data: st.DataObject, keyed: bool) -> None:
        tx = self.pick_transaction(data, "pending")
        tx_id = tx.id if tx is not None else str(uuid.uuid4())
        if tx is None:
            expected = Outcome(404, "not_found")
        elif tx.status != "pending":
            expected = Outcome(409, "transaction_not_pending")
        else:
            expected = self.predict_legs([(p.debit, p.credit, 0, -p.amount) for p in tx.postings])
            if expected.code is None:
                expected.status = 200
        response = self.send(f"/v1/transactions/{tx_id}/void", None, keyed, expected)
        if expected.code is not None:
            return
        assert tx is not None
        self.commit(expected.new_balances)
        tx.status = "voided"
        self.check_transaction(response.json(), tx)

    @precondition(lambda self: self.transactions)
    @rule(data=st.data(), keyed=st.booleans())
    def reverse(self, data: st.DataObject, keyed: bool) -> None:
        tx = self.pick_transaction(data, "posted")
        tx_id = tx.id if tx is not None else str(uuid.uuid4())
        form = data.draw(st.sampled_from(["none", "empty", "description", "external_id"]))
        body: dict[str, Any] | None = None
        description = f"Reversal of {tx_id}"
        external_id = None
        if form == "empty":
            body = {}
        elif form == "description":
            description = self.fresh("undo")
            body = {"description": description}
        elif form == "external_id":
            external_id = data.draw(st.sampled_from(EXTERNAL_IDS))
            body = {"external_id": external_id}

        postings: list[Posting] = []
        if tx is None:
            expected = Outcome(404, "not_found")
        elif tx.status != "posted":
            expected = Outcome(409, "transaction_not_posted")
        elif tx.reversed_by_id is not None:
            expected = Outcome(409, "transaction_already_reversed")
        elif tx.reverses_id is not None:
            expected = Outcome(409, "transaction_is_reversal")
        elif self.external_id_taken(external_id):
            expected = Outcome(409, "duplicate_external_id")
        else:
            postings = [
                Posting(p.credit, p.debit, p.posted_amount, p.posted_amount)
                for p in tx.postings
                if p.posted_amount
            ]
            expected = self.predict_legs([(p.debit, p.credit, p.amount, 0) for p in postings])
            if expected.code is None:
                expected.status = 201
        response = self.send(f"/v1/transactions/{tx_id}/reverse", body, keyed, expected)
        if expected.code is not None:
            return
        assert tx is not None
        self.commit(expected.new_balances)
        made = response.json()
        reversal = Transaction(
            made["id"], "posted", postings, description, external_id, reverses_id=tx.id
        )
        self.check_transaction(made, reversal)
        self.transactions[reversal.id] = reversal
        tx.reversed_by_id = reversal.id

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Same key + same body: the first answer again, nothing re-executed."""
        sent = data.draw(st.sampled_from(self.sent), label="replayed")
        before = self.snapshot()
        response = self.client.post(
            sent.path, json=sent.body, headers={"Idempotency-Key": sent.key}
        )
        assert response.status_code == sent.status, response.text
        assert response.content == sent.content
        assert response.headers.get("Idempotent-Replayed") == "true"
        assert self.snapshot() == before

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """Same key + another request: 422 idempotency_key_reused, nothing executed."""
        sent = data.draw(st.sampled_from(self.sent), label="reused")
        path, body = sent.path, sent.body
        if path == "/v1/accounts":
            assert body is not None
            body = {**body, "code": self.fresh("other")}
        elif path == "/v1/transactions":
            assert body is not None
            body = {**body, "description": self.fresh("other")}
        elif path == "/v1/transactions/batch":
            assert body is not None
            body = {**body, "atomic": not body["atomic"]}
        elif path.endswith("/post"):
            body = {"amount": 1} if body is None else None
        elif path.endswith("/void"):
            path = path.removesuffix("/void") + "/post"
        else:
            body = {"description": self.fresh("other")}
        before = self.snapshot()
        response = self.client.post(path, json=body, headers={"Idempotency-Key": sent.key})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "idempotency_key_reused", response.text
        assert self.snapshot() == before

    # ---------------------------------------------------------------- invariants

    @invariant()
    def history_adds_up(self) -> None:
        """Each touched account's point-in-time balance is its posted balance. For one with
        a limit, its entries add up to it too, and every balance_after is the one before
        plus or minus the entry (pending entries carry it unchanged). (Accounts without a
        limit are updated without a lock and keep no balance_after; the database check
        adds up their entries.)"""
        for account_id in sorted(self.touched):
            a = self.accounts[account_id]
            as_of = self.client.get(f"/v1/accounts/{account_id}/balance")
            assert as_of.status_code == 200, as_of.text
            assert as_of.json()["posted"] == a.posted(), a
            if a.limit is None:
                continue
            listed = self.client.get(f"/v1/accounts/{account_id}/entries", params={"limit": 1000})
            assert listed.status_code == 200, listed.text
            page = listed.json()
            assert page["next_cursor"] is None
            posted = 0
            for entry in reversed(page["data"]):  # oldest first
                assert entry["account_id"] == account_id
                assert entry["transaction_id"] in self.transactions, entry
                if not entry["pending"]:
                    sign = 1 if entry["direction"] == a.normal else -1
                    posted += sign * entry["amount"]
                assert entry["balance_after"] == posted, (a, entry)
            assert posted == a.posted(), a
        self.touched.clear()

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert_ledger_invariants(self.db, self.ledger_id)

        listed = self.client.get("/v1/accounts", params={"limit": 1000})
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["next_cursor"] is None
        balances = {a["id"]: a["balance"] for a in page["data"]}
        assert balances == {a.id: a.balance() for a in self.accounts.values()}

        sums: dict[tuple[str, str], int] = defaultdict(int)
        for a in self.accounts.values():
            sums[a.currency, a.normal] += a.posted()
            if a.limit is not None:
                assert a.available() >= -a.limit, a
        for currency in CURRENCIES:
            assert sums[currency, "credit"] == sums[currency, "debit"], currency

        listed = self.client.get("/v1/transactions", params={"limit": 1000})
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["next_cursor"] is None
        got = {t["id"]: t for t in page["data"]}
        assert got.keys() == self.transactions.keys()
        for tx_id, tx in self.transactions.items():
            self.check_transaction(got[tx_id], tx)

    def teardown(self) -> None:
        if self.tenant is not None:
            self.tenant.client.close()


# A passing run takes well under a minute; a failing one may shrink for up to five minutes
# (Hypothesis' own bound) to print a minimal sequence of requests.
@pytest.mark.timeout(600)
def test_ledger_matches_its_model(
    admin: httpx.Client, server: Server, db: psycopg.Connection[Any]
) -> None:
    LedgerMachine.admin = admin
    LedgerMachine.server = server
    LedgerMachine.db = db
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
