"""``skin serve``: the skin-tracking web service (accounts, uploads, history, trends) on 127.0.0.1:8000."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .common import app, err, fail, need_extra
from .infer import DEFAULT_LIGHT, LightMethod


def default_db() -> Path:
    """A SQLite file in the user data folder (XDG_DATA_HOME, else ~/.local/share)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "skin-infer" / "serve.sqlite3"


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to accept other machines).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(help="SQLite file, or a SQLAlchemy URL (postgresql+psycopg://...) for several servers."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Classifier bundles, as skin-infer (default: shipped).")
    ] = None,
    parser: Annotated[str, typer.Option(help="Face finder, as skin-infer.")] = "auto",
    parser_model: Annotated[str | None, typer.Option(help="Face-parser bundle or YuNet file.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (each loads the models once).")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="Analyses at once per process.")] = 1,
    queue: Annotated[int, typer.Option(min=0, help="Uploads waiting per process before 503 + Retry-After.")] = 4,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads per model (0: ONNX Runtime's default).")] = 0,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted.")] = 20.0,
    light: Annotated[
        LightMethod, typer.Option(help="Light correction behind the colour measures, as skin-infer.")
    ] = DEFAULT_LIGHT,
) -> None:
    """Serve the web page at / and the JSON API under /api (OpenAPI docs at /docs)."""
    try:
        import uvicorn

        from ..serve.app import Settings, create_app
        from ..serve.db import database_url
    except ImportError as exc:
        raise need_extra("serve", "skin serve", exc) from None
    if db is None:
        default_db().parent.mkdir(parents=True, exist_ok=True)
    url = database_url(db or default_db())
    settings = Settings(
        db_url=url,
        model=list(model) if model else "default",
        parser=parser,
        parser_model=parser_model,
        concurrency=concurrency,
        queue=queue,
        threads=threads,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        light=LightMethod(light).value,
    )
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    err.print(f"skin serve: http://{host}:{port}/ (API docs: /docs), database {shown}", highlight=False)
    try:
        if workers == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        else:  # each worker process builds its own app (and models) from the same settings
            os.environ["SKIN_SERVE_SETTINGS"] = json.dumps(settings.__dict__ | {"analyzer": None})
            create_app(settings)  # migrate once, before the workers start
            uvicorn.run(
                "skin_infer.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning",
            )  # fmt: skip
    except Exception as exc:  # a bad --db URL, an unreachable PostgreSQL, a port in use ...
        raise fail(f"skin serve could not start: {type(exc).__name__}: {exc}", 1) from None
