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

import cv2
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select

from ..runtime import Analyzer, ImageError
from ..runtime.options import AnalysisOptions
from .db import Analysis, Token, User, make_engine, migrate, sessions, utcnow

STATIC = Path(__file__).parent / "static"
USERNAME = r"^[A-Za-z0-9_.-]{3,64}$"


@dataclass
class Settings:
    db_url: str
    # the analysis, as skin-infer's (runtime/options.py); uploads are capped below skin-infer's 64 MP
    analysis: AnalysisOptions = field(default_factory=lambda: AnalysisOptions(max_pixels=40_000_000))
    max_upload_bytes: int = 20 * 1024 * 1024
    concurrency: int = 1  # analyses at once per process (each uses the models' threads)
    queue: int = 4  # uploads waiting for a slot before 503
    token_hours: float = 12.0
    login_attempts: int = 5  # failed logins per username and address ...
    login_window_s: float = 300.0  # ... in this window, then 429
    analyzer: Analyzer | None = field(default=None, repr=False)  # tests may share one


class Credentials(BaseModel):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=8, max_length=256)


class LoginLimiter:
    """Failed logins per (username, address) in a sliding window: a brute force gets 429 after a few tries."""

    def __init__(self, attempts: int, window: float):
        self.attempts, self.window = attempts, window
        self.failures: dict[tuple[str, str], deque] = defaultdict(deque)
        self.lock = threading.Lock()

    def _recent(self, key) -> deque:
        now, q = time.monotonic(), self.failures[key]
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, key) -> float:
        with self.lock:
            q = self._recent(key)
            return self.window - (time.monotonic() - q[0]) if len(q) >= self.attempts else 0.0

    def failed(self, key) -> None:
        with self.lock:
            self._recent(key).append(time.monotonic())

    def succeeded(self, key) -> None:
        with self.lock:
            self.failures.pop(key, None)


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def create_app(settings: Settings) -> FastAPI:
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    Session = sessions(engine)
    hasher = PasswordHasher()  # Argon2id with the library's memory-hard defaults
    limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)
    analyzer = settings.analyzer or Analyzer(settings.analysis)
    slots = asyncio.Semaphore(settings.concurrency)
    waiting = {"n": 0}
    app = FastAPI(title="skin-infer", summary="Skin analysis from photos: accounts, uploads, history and trends.")

    def current_user(authorization: str | None = Header(default=None)) -> int:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "log in first: send Authorization: Bearer <token> (POST /api/login)")
        digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
        with Session() as db:
            token = db.get(Token, digest)
            if token is None or token.expires_at < utcnow():
                raise HTTPException(401, "this token is unknown or expired; log in again")
            return token.user_id

    def own(db, user_id: int, analysis_id: int) -> Analysis:
        found = db.scalar(select(Analysis).where(Analysis.id == analysis_id, Analysis.user_id == user_id))
        if found is None:  # another user's analysis is as absent as a deleted one
            raise HTTPException(404, f"no analysis {analysis_id}")
        return found

    @app.post("/api/users", status_code=201)
    def create_user(body: Credentials):
        with Session() as db, db.begin():
            if db.scalar(select(User).where(User.username == body.username)) is not None:
                raise HTTPException(409, f"the username {body.username!r} is taken")
            user = User(username=body.username, password_hash=hasher.hash(body.password))
            db.add(user)
            db.flush()
            return {"id": user.id, "username": user.username}

    @app.post("/api/login")
    def login(body: Credentials, request: Request):
        key = (body.username, request.client.host if request.client else "?")
        wait = limiter.blocked(key)
        if wait:
            return _error(429, "too many failed logins; wait and try again", **{"Retry-After": str(int(wait) + 1)})
        with Session() as db, db.begin():
            user = db.scalar(select(User).where(User.username == body.username))
            try:
                if user is None:
                    raise VerificationError
                hasher.verify(user.password_hash, body.password)
            except (VerificationError, InvalidHashError):
                limiter.failed(key)
                raise HTTPException(401, "wrong username or password") from None
            limiter.succeeded(key)
            token = secrets.token_urlsafe(32)
            expires = utcnow() + timedelta(hours=settings.token_hours)
            db.add(Token(token_hash=hashlib.sha256(token.encode()).hexdigest(), user_id=user.id, expires_at=expires))
            db.execute(delete(Token).where(Token.user_id == user.id, Token.expires_at < utcnow()))
        return {"token": token, "token_type": "bearer", "expires_at": expires.isoformat() + "Z"}

    @app.post("/api/analyses", status_code=201)
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

    @app.get("/api/analyses")
    def list_analyses(limit: int = 20, offset: int = 0, user_id: int = Depends(current_user)):
        limit = max(1, min(limit, 100))
        with Session() as db:
            total = db.scalar(select(func.count()).select_from(Analysis).where(Analysis.user_id == user_id))
            rows = db.scalars(
                select(Analysis)
                .where(Analysis.user_id == user_id)
                .order_by(Analysis.taken_at.desc(), Analysis.id.desc())
                .limit(limit)
                .offset(max(0, offset))
            ).all()
            items = [
                {"id": r.id, "taken_at": r.taken_at.isoformat(), "result": json.loads(r.result_json)} for r in rows
            ]
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    @app.get("/api/analyses/{analysis_id}")
    def get_analysis(analysis_id: int, user_id: int = Depends(current_user)):
        with Session() as db:
            return _record(own(db, user_id, analysis_id))

    @app.get("/api/analyses/{analysis_id}/overlay.png")
    def get_overlay(analysis_id: int, user_id: int = Depends(current_user)):
        with Session() as db:
            return Response(own(db, user_id, analysis_id).overlay_png, media_type="image/png")

    @app.delete("/api/analyses/{analysis_id}", status_code=204)
    def delete_analysis(analysis_id: int, user_id: int = Depends(current_user)):
        with Session() as db, db.begin():
            db.delete(own(db, user_id, analysis_id))
        return Response(status_code=204)

    @app.get("/api/trends")
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
    ok, overlay = cv2.imencode(".png", result.plot())
    photo = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes() if keep_photo else None
    return result.to_dict(), overlay.tobytes(), photo


# The measures a trend is drawn for: redness_index is the one a room's light cannot move (docs/measures.md).
TRENDED = ("redness_index", "ita_deg", "redness_a", "lab_l", "lab_b")


def _series_values(result: dict):
    for region in result.get("regions", []):
        for key, value in (region.get("measures") or {}).items():
            if key in TRENDED and isinstance(value, (int, float)):  # null: not defined on that photo
                yield f"{region['name']}.{key}", float(value)
        for head, pred in (region.get("predictions") or {}).items():
            yield f"{head}.{'expected' if 'expected' in pred else 'score'}", float(pred.get("expected", pred["score"]))


def settings_from_env() -> Settings:
    """What `skin serve` passes to worker processes (uvicorn --workers imports the app by name)."""
    import os

    raw = json.loads(os.environ["SKIN_SERVE_SETTINGS"])
    return Settings(**{**raw, "analysis": AnalysisOptions(**raw["analysis"])})


def app_from_env() -> FastAPI:
    return create_app(settings_from_env())
