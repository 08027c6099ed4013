"""The web service: a JSON API under ``/api`` and a page at ``/`` (FastAPI).

- Accounts: passwords hashed with Argon2id (argon2-cffi), login rate-limited per username and address,
  bearer tokens that expire (only their sha256 is stored). A user only ever sees their own analyses: every
  query filters on the token's user, and another user's analysis answers 404 like a missing one.
- Uploads: a size limit read before decoding, the runtime's safe decoding (any bad image is a 4xx JSON error
  and writes nothing), EXIF gone from anything stored (the photo, only when asked, is re-encoded from pixels).
- Inference runs in a worker thread, off the event loop, at most ``concurrency`` at a time with ``queue`` more
  waiting; beyond that the answer is 503 with Retry-After, never a hang. One upload is one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import cv2
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..runtime import Analyzer, ImageError
from ..runtime.options import AnalysisOptions
from .db import Analysis, Token, User, make_engine, migrate, sessions, utcnow
from .guard import Guard

STATIC = Path(__file__).parent / "static"
USERNAME = r"^[A-Za-z0-9_.-]{3,64}$"
MAX_ID = 2**31 - 1  # ids and offsets beyond what every database's integer holds are a 422, not a 500
AnalysisId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
OVERLAY_SIDE = 1280  # overlays are stored at most this long on their long side


@dataclass
class Settings:
    db_url: str
    # the analysis, as skin-infer's (runtime/options.py); uploads are capped below skin-infer's 64 MP
    analysis: AnalysisOptions = field(default_factory=lambda: AnalysisOptions(max_pixels=40_000_000))
    max_upload_bytes: int = 20 * 1024 * 1024
    concurrency: int = 1  # analyses at once per process (each uses the models' threads)
    queue: int = 4  # uploads waiting for a slot before 503
    token_hours: float = 12.0
    login_attempts: int = 5  # logins per username and address that may fail ...
    login_window_s: float = 300.0  # ... in this window, then 429
    signups_per_address: int = 5  # new accounts per client address ...
    signup_window_s: float = 3600.0  # ... in this window, then 429
    hashing: int = 2  # Argon2 hashes at once (64 MiB each): more requests wait their turn
    analyzer: Analyzer | None = field(default=None, repr=False)  # tests may share one


class Credentials(BaseModel):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=8, max_length=256)


class PasswordChange(BaseModel):
    password: str = Field(max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class Password(BaseModel):
    password: str = Field(max_length=256)


FIELD_RULES = {
    "username": "3 to 64 letters, digits, '_', '.' or '-'",
    "password": "8 to 256 characters",
    "new_password": "8 to 256 characters",
}


def _sentence(error: dict) -> str:
    """A validation error as a sentence naming the field, never repeating what was sent (a password)."""
    field_name = next((str(p) for p in reversed(error.get("loc", ())) if isinstance(p, str) and p != "body"), "")
    if field_name in FIELD_RULES:
        return f"{field_name.replace('_', ' ')}: {FIELD_RULES[field_name]}"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{field_name.replace('_', ' ')}: {message}" if field_name else message


class Limiter:
    """At most ``attempts`` events per key in a sliding ``window``: a brute force or a signup flood gets 429.

    ``take`` checks and records in one step under the lock, so simultaneous requests cannot all pass a check
    made before any of them is recorded; memory is bounded: keys whose window is over are dropped, and at most
    ``max_keys`` are held (the oldest go first)."""

    def __init__(self, attempts: int, window: float, max_keys: int = 10_000):
        self.attempts, self.window, self.max_keys = attempts, window, max_keys
        self.events: dict[object, deque] = {}
        self.lock = threading.Lock()

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self.events.items() if not q or now - q[-1] > self.window]:
            del self.events[key]
        while len(self.events) >= self.max_keys:
            del self.events[next(iter(self.events))]

    def take(self, key) -> float:
        """0 and the event recorded, or the seconds to wait (nothing recorded)."""
        with self.lock:
            now = time.monotonic()
            q = self.events.get(key)
            if q is None:
                if len(self.events) >= self.max_keys:
                    self._prune(now)
                q = self.events[key] = deque()
            while q and now - q[0] > self.window:
                q.popleft()
            if len(q) >= self.attempts:
                return self.window - (now - q[0])
            q.append(now)
            return 0.0

    def forget(self, key) -> None:
        with self.lock:
            self.events.pop(key, None)


class Problem(BaseModel):
    """Every error answer: one sentence saying what went wrong and what to do."""

    detail: str


WHY = {
    401: "no valid session: log in first",
    403: "the password given is wrong",
    404: "no such analysis (or not yours)",
    408: "the request body arrived too slowly",
    409: "the username is taken",
    413: "the request body is too large",
    422: "the request is not valid: the sentence says which field and why",
    429: "too many attempts: wait for Retry-After seconds",
    500: "the analysis failed on this photo",
    503: "the server is busy or its storage is unavailable: try again",
}


def errors(*codes: int) -> dict:
    """The error answers a route declares in the OpenAPI schema (every route: 408, 413 from the body guard, 422,
    503 from storage); each is a ``Problem``."""
    return {c: {"model": Problem, "description": WHY[c]} for c in sorted({408, 413, 422, 503, *codes})}


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def create_app(settings: Settings) -> FastAPI:
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    Session = sessions(engine)
    hasher = PasswordHasher()  # Argon2id with the library's memory-hard defaults
    hashing = threading.BoundedSemaphore(settings.hashing)  # bounds the memory hashes take at once
    dummy_hash = hasher.hash(secrets.token_urlsafe(16))  # unknown users cost a login what known ones do
    logins = Limiter(settings.login_attempts, settings.login_window_s)
    signups = Limiter(settings.signups_per_address, settings.signup_window_s)

    def hashed(work, *args):
        with hashing:
            return work(*args)

    analyzer = settings.analyzer or Analyzer(settings.analysis)
    slots = asyncio.Semaphore(settings.concurrency)
    waiting = {"n": 0}
    # /docs and /redoc from the Swagger UI and ReDoc files fastapi-offline ships: no CDN, so they render offline
    app = FastAPIOffline(title="skin-infer", summary="Skin analysis from photos: accounts, uploads, history, trends.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        return JSONResponse({"detail": "; ".join(dict.fromkeys(_sentence(e) for e in exc.errors()))}, 422)

    @app.exception_handler(SQLAlchemyError)
    async def storage(_request, exc: SQLAlchemyError):
        return JSONResponse({"detail": f"the database is unavailable ({type(exc).__name__}); try again later"}, 503)

    def token_user(authorization: str | None) -> tuple[str, int] | None:
        """(token digest, user id) of a valid bearer token, else None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
        with Session() as db:
            token = db.get(Token, digest)
            if token is None or token.expires_at < utcnow():
                return None
            return digest, token.user_id

    def current_user(authorization: str | None = Header(default=None)) -> int:
        found = token_user(authorization)
        if found is None:
            raise HTTPException(401, "log in first (POST /api/login); this token is missing, unknown or expired")
        return found[1]

    def own(db, user_id: int, analysis_id: int) -> Analysis:
        found = db.scalar(select(Analysis).where(Analysis.id == analysis_id, Analysis.user_id == user_id))
        if found is None:  # another user's analysis is as absent as a deleted one
            raise HTTPException(404, f"no analysis {analysis_id}")
        return found

    @app.post("/api/users", status_code=201, responses=errors(409, 429))
    def create_user(body: Credentials, request: Request):
        wait = signups.take(request.client.host if request.client else "?")
        if wait:
            return _error(
                429, "too many new accounts from this address; try later", **{"Retry-After": str(int(wait) + 1)}
            )
        with Session() as db:
            if db.scalar(select(User).where(User.username == body.username)) is not None:
                raise HTTPException(409, f"the username {body.username!r} is taken")
        password_hash = hashed(hasher.hash, body.password)
        with Session() as db, db.begin():
            if db.scalar(select(User).where(User.username == body.username)) is not None:
                raise HTTPException(409, f"the username {body.username!r} is taken")
            user = User(username=body.username, password_hash=password_hash)
            db.add(user)
            db.flush()
            return {"id": user.id, "username": user.username}

    def check_password(user: User | None, password: str) -> bool:
        try:
            return hashed(hasher.verify, user.password_hash if user else dummy_hash, password) and user is not None
        except (VerificationError, InvalidHashError):
            return False

    @app.post("/api/login", responses=errors(401, 429))
    def login(body: Credentials, request: Request):
        key = (body.username, request.client.host if request.client else "?")
        wait = logins.take(key)  # counted before the check: simultaneous tries cannot overrun the limit
        if wait:
            return _error(429, "too many failed logins; wait and try again", **{"Retry-After": str(int(wait) + 1)})
        with Session() as db, db.begin():
            user = db.scalar(select(User).where(User.username == body.username))
            if not check_password(user, body.password):
                raise HTTPException(401, "wrong username or password")
            logins.forget(key)
            token = secrets.token_urlsafe(32)
            expires = utcnow() + timedelta(hours=settings.token_hours)
            db.add(Token(token_hash=hashlib.sha256(token.encode()).hexdigest(), user_id=user.id, expires_at=expires))
            db.execute(delete(Token).where(Token.user_id == user.id, Token.expires_at < utcnow()))
        return {"token": token, "token_type": "bearer", "expires_at": expires.isoformat() + "Z"}

    @app.post("/api/logout", status_code=204, responses=errors(401))
    def logout(authorization: str | None = Header(default=None)):
        found = token_user(authorization)
        if found is None:
            raise HTTPException(401, "this token is missing, unknown or expired; nothing to log out")
        with Session() as db, db.begin():
            db.execute(delete(Token).where(Token.token_hash == found[0]))
        return Response(status_code=204)

    @app.post("/api/password", status_code=204, responses=errors(401, 403))
    def change_password(body: PasswordChange, authorization: str | None = Header(default=None)):
        found = token_user(authorization)
        if found is None:
            raise HTTPException(401, "log in first (POST /api/login)")
        digest, user_id = found
        with Session() as db:
            user = db.get(User, user_id)
        if not check_password(user, body.password):
            raise HTTPException(403, "the current password is wrong")
        password_hash = hashed(hasher.hash, body.new_password)
        with Session() as db, db.begin():
            db.get(User, user_id).password_hash = password_hash
            # every other session ends: a stolen token dies with the old password
            db.execute(delete(Token).where(Token.user_id == user_id, Token.token_hash != digest))
        return Response(status_code=204)

    @app.delete("/api/users/me", status_code=204, responses=errors(401, 403))
    def delete_account(body: Password, user_id: int = Depends(current_user)):
        with Session() as db:
            user = db.get(User, user_id)
        if not check_password(user, body.password):
            raise HTTPException(403, "the password is wrong; the account is kept")
        with Session() as db, db.begin():  # photos, results, overlays and tokens go with it
            db.execute(delete(Analysis).where(Analysis.user_id == user_id))
            db.execute(delete(Token).where(Token.user_id == user_id))
            db.execute(delete(User).where(User.id == user_id))
        return Response(status_code=204)

    @app.get(
        "/api/export",
        responses={
            **errors(401),
            200: {
                "description": "the history, as ?format asks",
                "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
            },
        },
    )
    def export(format: str = Query("json", pattern="^(json|csv)$"), user_id: int = Depends(current_user)):
        """Every analysis of the caller: a JSON list of {id, taken_at, result}, or the runtime's CSV rows (one per
        region) with the analysis id and date in front."""
        with Session() as db:
            rows = db.scalars(select(Analysis).where(Analysis.user_id == user_id).order_by(Analysis.id)).all()
            records = [_record(r) for r in rows]
        disposition = {"Content-Disposition": f'attachment; filename="skin-infer-history.{format}"'}
        if format == "json":
            return Response(json.dumps(records, indent=1), media_type="application/json", headers=disposition)
        return Response(_history_csv(records), media_type="text/csv", headers=disposition)

    @app.post("/api/analyses", status_code=201, responses=errors(401, 500))
    async def create_analysis(
        file: UploadFile = File(...),
        taken_at: date | None = Form(default=None),
        keep_photo: bool = Form(default=False),
        user_id: int = Depends(current_user),
    ):
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(
                413, f"the upload is larger than {settings.max_upload_bytes:,} bytes; send a smaller photo"
            )
        if waiting["n"] >= settings.concurrency + settings.queue:
            return _error(503, "the server is busy analysing other photos; try again shortly", **{"Retry-After": "2"})
        waiting["n"] += 1
        try:
            async with slots:
                name = Path(file.filename or "upload").name
                try:
                    result, overlay, photo = await run_in_threadpool(_analyse, analyzer, data, name, keep_photo)
                except ImageError as exc:
                    raise HTTPException(422, f"{name}: {exc}") from None
                except RuntimeError as exc:
                    raise HTTPException(500, str(exc)) from None
        finally:
            waiting["n"] -= 1
        with Session() as db, db.begin():
            row = Analysis(
                user_id=user_id,
                taken_at=taken_at or date.today(),
                result_json=json.dumps(result, allow_nan=False),
                overlay_png=overlay,
                photo_jpeg=photo,
            )
            db.add(row)
            db.flush()
            return {"id": row.id, "taken_at": row.taken_at.isoformat(), "result": result}

    @app.get("/api/analyses", responses=errors(401))
    def list_analyses(
        limit: int = Query(20, ge=1, le=100),
        offset: int = Query(0, ge=0, le=MAX_ID),
        user_id: int = Depends(current_user),
    ):
        with Session() as db:
            total = db.scalar(select(func.count()).select_from(Analysis).where(Analysis.user_id == user_id))
            rows = db.scalars(
                select(Analysis)
                .where(Analysis.user_id == user_id)
                .order_by(Analysis.taken_at.desc(), Analysis.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            items = [
                {"id": r.id, "taken_at": r.taken_at.isoformat(), "result": json.loads(r.result_json)} for r in rows
            ]
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    @app.get("/api/analyses/{analysis_id}", responses=errors(401, 404))
    def get_analysis(analysis_id: AnalysisId, user_id: int = Depends(current_user)):
        with Session() as db:
            return _record(own(db, user_id, analysis_id))

    @app.get(
        "/api/analyses/{analysis_id}/overlay.png",
        response_class=Response,
        responses={
            **errors(401, 404),
            200: {
                "description": "the overlay picture",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            },
        },
    )
    def get_overlay(analysis_id: AnalysisId, user_id: int = Depends(current_user)):
        with Session() as db:
            return Response(own(db, user_id, analysis_id).overlay_png, media_type="image/png")

    @app.delete("/api/analyses/{analysis_id}", status_code=204, responses=errors(401, 404))
    def delete_analysis(analysis_id: AnalysisId, user_id: int = Depends(current_user)):
        with Session() as db, db.begin():
            db.delete(own(db, user_id, analysis_id))
        return Response(status_code=204)

    @app.get("/api/trends", responses=errors(401, 404))
    def trends(measure: str | None = None, user_id: int = Depends(current_user)):
        """Per date, the mean of each measure and each head's score over the user's analyses:
        series named ``region.measure`` (e.g. ``face_skin.ita_deg``) and ``head.expected``/``head.score``."""
        with Session() as db:
            rows = db.execute(select(Analysis.taken_at, Analysis.result_json).where(Analysis.user_id == user_id)).all()
        values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for taken, text in rows:
            for name, value in _series_values(json.loads(text)):
                values[name][taken.isoformat()].append(value)
        series = {
            name: [{"date": d, "value": round(sum(v) / len(v), 3), "n": len(v)} for d, v in sorted(by_date.items())]
            for name, by_date in sorted(values.items())
            if measure is None or name == measure or name.endswith("." + measure)
        }
        if measure is not None and not series:
            raise HTTPException(404, f"no series named {measure!r}; GET /api/trends lists them all")
        return {"series": series}

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(
        Guard,
        upload_cap=settings.max_upload_bytes,
        authorized=lambda header: token_user(header) is not None,
        upload_path="/api/analyses",
    )
    app.state.sessions = Session
    return app


def _record(row: Analysis) -> dict:
    return {"id": row.id, "taken_at": row.taken_at.isoformat(), "result": json.loads(row.result_json)}


def _analyse(analyzer: Analyzer, data: bytes, name: str, keep_photo: bool):
    """The runtime on one upload: (per-image JSON, overlay PNG, EXIF-free JPEG or None). A photo that cannot
    be decoded raises ImageError (the client's to fix); a failure inside the analysis raises RuntimeError."""
    image = analyzer.load(data)
    result = analyzer.analyze_decoded(image, name)
    if not result.ok:
        raise RuntimeError(result.error)
    picture = result.plot()
    scale = OVERLAY_SIDE / max(picture.shape[:2])
    if scale < 1:  # a 40 MP photo's overlay would cost the database more than the photo
        picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, overlay = cv2.imencode(".png", picture)
    photo = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes() if keep_photo else None
    return result.to_dict(), overlay.tobytes(), photo


# The measures a trend is drawn for: redness_index is the one a room's light cannot move (docs/measures.md).
TRENDED = ("redness_index", "ita_deg", "redness_a", "lab_l", "lab_b", "wrinkle_count", "wrinkle_density")


def _series_values(result: dict):
    faces = result.get("faces", [])
    for carrier in [*faces, *(r for r in result.get("regions", []) if r.get("face_index") is None)]:
        if isinstance(carrier.get("wrinkle_score"), (int, float)):  # per face (or close-up): 0-100
            yield "face_skin.wrinkle_score", float(carrier["wrinkle_score"])
    for region in result.get("regions", []):
        for key, value in (region.get("measures") or {}).items():
            if key in TRENDED and isinstance(value, (int, float)):  # null: not defined on that photo
                yield f"{region['name']}.{key}", float(value)
        for head, pred in (region.get("predictions") or {}).items():
            yield f"{head}.{'expected' if 'expected' in pred else 'score'}", float(pred.get("expected", pred["score"]))


def _history_csv(records: list[dict]) -> str:
    import csv
    import io

    from ..runtime.results import ImageResult, csv_columns

    heads = {}
    for record in records:
        for region in record["result"].get("regions", []):
            for head, p in (region.get("predictions") or {}).items():
                heads.setdefault(head, tuple(p["probs"]))
    columns = ["analysis_id", "taken_at", *csv_columns(list(heads.items()))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        for row in ImageResult.from_dict(record["result"]).csv_rows():
            writer.writerow({"analysis_id": record["id"], "taken_at": record["taken_at"], **row})
    return buffer.getvalue()


def settings_from_env() -> Settings:
    """What `skin serve` passes to worker processes (uvicorn --workers imports the app by name)."""
    import os

    raw = json.loads(os.environ["SKIN_SERVE_SETTINGS"])
    return Settings(**{**raw, "analysis": AnalysisOptions(**raw["analysis"])})


def app_from_env() -> FastAPI:
    return create_app(settings_from_env())
