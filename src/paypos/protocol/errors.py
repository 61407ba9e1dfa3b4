"""Errors that cross process boundaries whole.

paypos's input errors carry the field at fault as a keyword (``EmvError(message,
field="9F26")``), and several build their message from it. Python pickles an exception as
``type(error)(*error.args)``: for these that either fails (the keyword is required), drops
the field, or prefixes the message twice. An error raised in a worker process — the load
generator builds its requests in a process pool, the host runs one process per core — then
comes back as an unrelated ``TypeError``. `KeepsFields` pickles the error's args and
attributes as they are, without calling ``__init__`` again.
"""

from __future__ import annotations

from typing import Any


class KeepsFields:
    """Mixin for an exception class (list it first): pickling keeps ``args`` and every
    attribute (``field``, ``reason``, ...) exactly."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _restored, (type(self), self.args, dict(self.__dict__))  # type: ignore[attr-defined]


def _restored(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
