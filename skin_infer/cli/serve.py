"""``skin serve``: the skin-tracking web service (accounts, uploads, history, trends) on 127.0.0.1:8000."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ..runtime.options import AnalysisOptions
from .common import app, err, fail, need_extra
from .options import analysis_options


def default_db() -> Path:
    """A SQLite file in the user data folder (XDG_DATA_HOME, else ~/.local/share)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "skin-infer" / "serve.sqlite3"


@app.command("serve")
@analysis_options(exclude=("explain",), defaults={"max_pixels": 40_000_000})  # uploads: below skin-infer's 64 MP
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to accept other machines).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(help="SQLite file, or a SQLAlchemy URL (postgresql+psycopg://...) for several servers."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (each loads the models once).")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="Analyses at once per process.")] = 1,
    queue: Annotated[int, typer.Option(min=0, help="Uploads waiting per process before 503 + Retry-After.")] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted.")] = 20.0,
    options: AnalysisOptions = AnalysisOptions(),
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
        analysis=options,
        concurrency=concurrency,
        queue=queue,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
    )
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    err.print(f"skin serve: http://{host}:{port}/ (API docs: /docs), database {shown}", highlight=False)
    try:
        if workers == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        else:  # each worker process builds its own app (and models) from the same settings
            os.environ["SKIN_SERVE_SETTINGS"] = json.dumps(
                settings.__dict__ | {"analyzer": None, "analysis": options.to_dict()}
            )
            create_app(settings)  # migrate once, before the workers start
            uvicorn.run(
                "skin_infer.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning",
            )  # fmt: skip
    except Exception as exc:  # a bad --db URL, an unreachable PostgreSQL, a port in use ...
        raise fail(f"skin serve could not start: {type(exc).__name__}: {exc}", 1) from None
