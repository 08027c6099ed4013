"""``skin models list|pull``: the model files the runtime can download, and the cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .common import app, err, fail

models_app = typer.Typer(help="Model files: list them, download them into the cache.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """The models shipped inside the package, the ones the runtime can download, and which are in the cache."""
    from ..runtime import graph_cache
    from ..runtime.defaults import shipped_models, shipped_root
    from ..runtime.downloads import REGISTRY, cache_dir, cached_path
    from ..runtime.errors import BundleError

    shipped = Table("name", "role", "size", "licence", "sha256", title=f"shipped: {shipped_root()}")
    for row in shipped_models():
        size = f"{row['size'] / 1e6:.2f} MB" if row["size"] else "missing: reinstall skin-infer"
        shipped.add_row(row["name"], row["role"], size, row["licence"], (row["sha256"] or "")[:16])
    Console().print(shipped)
    table = Table("name", "cached", "size", "licence", "description", title=f"downloadable, cache: {cache_dir()}")
    for name, source in REGISTRY.items():
        try:
            path = cached_path(name)
            state = str(path) if path else "no"
        except BundleError:
            state = f"damaged: run `skin models pull {name}`"
        table.add_row(
            name,
            state,
            f"{source.size / 1e6:.2f} MB",
            source.licence,
            source.description,
        )
    Console().print(table)
    graphs = list(graph_cache.folder().glob("*.onnx"))
    typer.echo(
        f"optimised graphs: {len(graphs)} ({sum(p.stat().st_size for p in graphs) / 1e6:.1f} MB) in "
        f"{graph_cache.folder()}; safe to delete, {graph_cache.ENV}=0 turns them off"
    )


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name (see `skin models list`).")],
    url: Annotated[str | None, typer.Option(help="Download from this URL instead (a mirror).")] = None,
) -> None:
    """Download a model into the cache, checking its pinned sha256."""
    from ..runtime import SkinInferError, pull

    try:
        path = pull(name, url)
    except SkinInferError as exc:
        raise fail(str(exc), 1) from None
    err.print(f"{name}: saved to {path} (sha256 verified); `--parser auto` uses it from now on", highlight=False)
