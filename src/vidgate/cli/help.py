"""Help screens without typer's `<str>` / `<bool>` type tags.

Typer (0.29) prints the Python type of every parameter beside it, `--help <bool>` included,
which reads as noise. These command classes show an option's value as a word
(its `metavar`, e.g. `--size WxH`, else its name in capitals, as click does) and nothing
beside flags and arguments.
"""

from __future__ import annotations

from typing import Any

import typer.core


def _untagged(params: list[Any]) -> list[Any]:
    for param in params:
        if not getattr(param, "_vidgate_untagged", False):
            shown = None  # an argument's name already says what it is; so does a flag
            if isinstance(param, typer.core.TyperOption) and not param.is_flag:
                shown = param.metavar or param.name.upper()
            param.display_type_rich = lambda ctx, shown=shown: shown
            param._vidgate_untagged = True
    return params


class Command(typer.core.TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _untagged(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _untagged(super().get_params(ctx))


def new_app(help: str) -> typer.Typer:
    """A Typer app (or sub-app) whose commands use the classes above."""
    return typer.Typer(help=help, cls=Group, no_args_is_help=True, add_completion=False)


def command(app: typer.Typer, name: str | None = None):
    """`app.command` with the untagged help screen."""
    return app.command(name, cls=Command)
