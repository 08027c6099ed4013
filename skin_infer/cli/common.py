"""What every command shares: the Typer app, the error console and how a usage error ends a command."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    help="skin-infer: skin analysis from photos with ONNX Runtime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"skin-infer {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """skin-infer: skin analysis from photos with ONNX Runtime."""


err = Console(stderr=True, soft_wrap=True, markup=False)  # never cut mid-sentence; paths may hold [brackets]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` and return the Exit to raise (code 2: usage, 1: the work failed)."""
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
    return typer.Exit(code)


def fail_on(exc: Exception) -> typer.Exit:
    """The error for a failed command: exit 2 when the input is the user's to fix (bad data, config or
    bundle), else 1."""
    from ..runtime.detections import LabelError
    from ..train.checks import DataError

    return fail(str(exc), 2 if isinstance(exc, (DataError, LabelError)) else 1)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), message), highlight=False)


def need_extra(extra: str, what: str, exc: ImportError) -> typer.Exit:
    """The error for a command whose optional dependencies are missing: name the extra to install."""
    return fail(f"{what} needs the [{extra}] extra ({exc.name} is missing): pip install 'skin-infer[{extra}]'")
