"""The transaction manager: participants with prepare / commit / abort.

After jPOS's TransactionManager: a transaction runs every participant's
``prepare`` in order; the first that declines stops the run, and the ones that
had prepared get ``abort`` in reverse order; when all prepare, each gets
``commit``. Participants hold no per-transaction state — everything lives in the
typed context — and both commit and abort must be idempotent. Which
participants run is chosen by MTI and processing code (`Route`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from paypos.authorization.result import Decline, Result

log = logging.getLogger("paypos.authorization")

C = TypeVar("C", contravariant=True)
Ctx = TypeVar("Ctx")


class Participant(Protocol[C]):
    name: str

    def prepare(self, ctx: C) -> None:
        """Check and stage work; raise `Decline` to stop the transaction."""

    def commit(self, ctx: C) -> None:
        """Make staged work final (idempotent)."""

    def abort(self, ctx: C) -> None:
        """Undo staged work (idempotent)."""


class HasResult(Protocol):
    result: Result | None
    reason: str


class TransactionManager(Generic[Ctx]):
    def __init__(self, participants: Sequence[Participant[Ctx]]) -> None:
        self.participants = tuple(participants)

    def run(self, ctx: Ctx) -> Result:
        prepared: list[Participant[Ctx]] = []
        try:
            for participant in self.participants:
                participant.prepare(ctx)
                prepared.append(participant)
        except Decline as decline:
            _set_result(ctx, decline.result, f"{getattr(participant, 'name', participant)}: {decline.reason}")
            for done in reversed(prepared):
                done.abort(ctx)
            return decline.result
        for participant in prepared:
            participant.commit(ctx)
        result = getattr(ctx, "result", None) or Result.APPROVED
        _set_result(ctx, result, getattr(ctx, "reason", ""))
        return result


def _set_result(ctx: object, result: Result, reason: str) -> None:
    setattr(ctx, "result", result)
    setattr(ctx, "reason", reason)
