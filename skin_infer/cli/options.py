"""The analysis options as command-line flags, declared once: ``@analysis_options()`` adds a flag per
``AnalysisOptions`` field (its default and help from ``runtime/options.py``) to a command, and hands the command
one validated ``options`` object. ``skin-infer``, ``skin val`` and ``skin serve`` take them this way, so their
flags cannot drift apart."""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..runtime.errors import SkinInferError
from ..runtime.light import METHODS as LIGHT_METHODS
from ..runtime.options import DEVICE_CHOICES, PARSERS, AnalysisOptions
from .common import fail

Parser = Enum("Parser", {name: name for name in PARSERS}, type=str)  # the choices are the finder table
Device = Enum("Device", {name: name for name in DEVICE_CHOICES}, type=str)
LightMethod = Enum("LightMethod", {name: name for name in LIGHT_METHODS}, type=str)

Opt = AnalysisOptions
# name -> (type, extra typer.Option arguments); the default and the help text come from AnalysisOptions
_FLAGS: dict[str, tuple[Any, dict]] = {
    "model": (list[str] | None, {}),
    "parser": (Parser, {}),
    "parser_model": (Path | None, {}),
    "device": (Device, {}),
    "threads": (int, {"min": 0}),
    "explain": (bool, {}),
    "min_skin": (float, {"min": 0.0, "max": 1.0}),
    "top_k": (int, {"min": 1}),
    "max_pixels": (int, {"min": 1}),
    "light": (LightMethod, {}),
    "min_confidence": (float | None, {"min": 0.0, "max": 1.0}),
    "min_face_score": (float | None, {"min": 0.0, "max": 1.0}),
}


def analysis_options(exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None):
    """Decorate a command taking ``options: AnalysisOptions``: it gets one flag per analysis option (but
    ``exclude``; ``defaults`` overrides a default for this command)."""
    names = [n for n in Opt.cli_names() if n not in exclude]
    missing = set(Opt.cli_names()) - set(_FLAGS)
    assert not missing, f"no flag declared for {missing}"  # a new option must get its flag here
    defaults = defaults or {}

    def wrap(command):
        signature = inspect.signature(command, eval_str=True)
        params = [p for p in signature.parameters.values() if p.name != "options"]
        for name in names:
            kind, extra = _FLAGS[name]
            default = defaults.get(name, None if name == "model" else Opt.default(name))
            option = typer.Option(help=Opt.help(name), **extra)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[kind, option]))  # fmt: skip

        @functools.wraps(command)
        def run(**kwargs):
            values = {n: kwargs.pop(n) for n in names}
            values["model"] = tuple(values["model"]) if values.get("model") else Opt.default("model")
            try:
                options = AnalysisOptions(**values)
            except SkinInferError as exc:
                raise fail(str(exc)) from None
            return command(options=options, **kwargs)

        run.__signature__ = signature.replace(parameters=params)
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return wrap
