"""Background loops of `paypos serve` that work through an outbox one batch at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import sqlalchemy as sa


async def run_batches(one_batch: Callable[[], int], *, batch_max: int, interval_s: float, what: str,
                      log: logging.Logger) -> None:
    """``one_batch`` (which returns how many items it handled) forever, off the event loop: a
    full batch is followed at once by the next, a smaller one by a pause of ``interval_s``. A
    failing batch is logged and the loop goes on (the next pass retries)."""
    while True:
        handled = 0
        try:
            handled = await asyncio.to_thread(one_batch)
        except sa.exc.OperationalError as error:  # the database is away; try again later
            log.warning("%s: database unavailable: %s", what, str(error).splitlines()[0])
        except Exception:
            log.exception("%s failed", what)
        if handled < batch_max:
            await asyncio.sleep(interval_s)
