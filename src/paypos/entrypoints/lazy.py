"""Command groups imported when they are first used, not when `paypos` starts.

Each sub-command group (escrow, settlement, reports, ...) pulls in its services; importing
them all made every `paypos` invocation — `--help`, one `ledger check` — pay for every
other command's imports (~0.5 s of a ~1.6 s start on this machine). Listing the groups
(`paypos --help`) still imports them all, for their help texts; running one imports only it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup


class LazyTyperGroup(TyperGroup):
    """A Typer group whose ``lazy_groups`` (name → "module:attribute" of a `typer.Typer`) are
    listed after its own commands, in the mapping's order, and built on first use."""

    lazy_groups: ClassVar[Mapping[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in self.lazy_groups if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy_groups:
            module, _, attribute = self.lazy_groups[cmd_name].partition(":")
            group = typer.main.get_group(getattr(importlib.import_module(module), attribute))
            group.name = cmd_name
            self.add_command(group, cmd_name)
        return super().get_command(ctx, cmd_name)


def lazy_groups(groups: Mapping[str, str]) -> type[LazyTyperGroup]:
    """The group class for ``typer.Typer(cls=...)`` with these lazily imported sub-groups."""
    return type("LazyTyperGroup", (LazyTyperGroup,), {"lazy_groups": dict(groups)})
