"""`skin serve`: the API through FastAPI's test client and a real server process on 127.0.0.1; accounts and
isolation between users, bad uploads, EXIF, bounded concurrency, kill -9, migrations, PostgreSQL."""

import io
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from shared_data import FACES  # noqa: E402

from skin_infer import Analyzer  # noqa: E402
from skin_infer.serve.app import Settings, create_app  # noqa: E402

BIN = Path(sys.executable).parent
PHOTO_A = FACES / "photos" / "fairface_Latino_aligned.jpg"
PHOTO_B = FACES / "photos" / "fairface_White_aligned.jpg"


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(device="cpu", threads=2)


@pytest.fixture
def client(tmp_path, analyzer):
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", analyzer=analyzer)
    with TestClient(create_app(settings)) as c:
        yield c


def account(client, name="alice", password="correct horse") -> dict:
    assert client.post("/api/users", json={"username": name, "password": password}).status_code == 201
    token = client.post("/api/login", json={"username": name, "password": password}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def upload(client, auth, path=PHOTO_A, taken_at=None, keep_photo=False, data=None):
    files = {"file": (Path(path).name, data if data is not None else Path(path).read_bytes(), "image/jpeg")}
    form = {"keep_photo": str(keep_photo).lower(), **({"taken_at": taken_at} if taken_at else {})}
    return client.post("/api/analyses", files=files, data=form, headers=auth)


def test_the_whole_flow_gives_the_runtimes_json(client, analyzer):
    auth = account(client)
    first = upload(client, auth, PHOTO_A, "2026-01-05")
    second = upload(client, auth, PHOTO_B, "2026-02-05")
    assert first.status_code == second.status_code == 201
    body = first.json()
    expected = analyzer(PHOTO_A, name=PHOTO_A.name).to_dict()
    for record in (body["result"], expected):
        record.pop("timings_ms")
    assert body["result"] == expected and body["taken_at"] == "2026-01-05"
    listed = client.get("/api/analyses", headers=auth).json()
    assert listed["total"] == 2 and [i["taken_at"] for i in listed["items"]] == ["2026-02-05", "2026-01-05"]
    assert client.get("/api/analyses?limit=1&offset=1", headers=auth).json()["items"][0]["id"] == body["id"]
    assert client.get(f"/api/analyses/{body['id']}", headers=auth).json()["result"]["file"] == PHOTO_A.name
    png = client.get(f"/api/analyses/{body['id']}/overlay.png", headers=auth)
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (300, 300)
    trends = client.get("/api/trends", headers=auth).json()["series"]
    assert [p["date"] for p in trends["face_skin.ita_deg"]] == ["2026-01-05", "2026-02-05"]
    assert "acne.expected" in trends
    # the face's 0-100 wrinkle score, one point per photo (the detector ran on both faces)
    assert [p["date"] for p in trends["face_skin.wrinkle_score"]] == ["2026-01-05", "2026-02-05"]
    one = client.get("/api/trends?measure=ita_deg", headers=auth).json()["series"]
    assert set(one) == {n for n in trends if n.endswith(".ita_deg")}
    assert client.delete(f"/api/analyses/{body['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/analyses/{body['id']}", headers=auth).status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "skin-infer"
    assert "<title>skin-infer</title>" in client.get("/").text


def test_users_never_see_each_others_analyses(client):
    alice, bob = account(client, "alice"), account(client, "bob")
    mine = upload(client, alice).json()["id"]
    for method, path in (
        ("get", f"/api/analyses/{mine}"),
        ("get", f"/api/analyses/{mine}/overlay.png"),
        ("delete", f"/api/analyses/{mine}"),
    ):
        assert getattr(client, method)(path, headers=bob).status_code == 404
    assert client.get("/api/analyses", headers=bob).json() == {"total": 0, "limit": 20, "offset": 0, "items": []}
    assert client.get("/api/trends", headers=bob).json() == {"series": {}}
    assert client.get(f"/api/analyses/{mine}", headers=alice).status_code == 200  # still there


def test_authentication(client, tmp_path, analyzer):
    assert client.get("/api/analyses").status_code == 401
    assert client.get("/api/analyses", headers={"Authorization": "Bearer forged"}).status_code == 401
    account(client)
    assert client.post("/api/users", json={"username": "alice", "password": "another one"}).status_code == 409
    assert client.post("/api/users", json={"username": "al", "password": "correct horse"}).status_code == 422
    assert client.post("/api/users", json={"username": "carol", "password": "short"}).status_code == 422
    for _ in range(5):
        assert client.post("/api/login", json={"username": "alice", "password": "wrong guess"}).status_code == 401
    blocked = client.post("/api/login", json={"username": "alice", "password": "correct horse"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    expired = Settings(db_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", analyzer=analyzer, token_hours=-1)
    with TestClient(create_app(expired)) as other:
        stale = account(other)
        assert other.get("/api/analyses", headers=stale).status_code == 401


def test_bad_uploads_are_4xx_and_write_nothing(client, tmp_path):
    from test_hardening import webp_bomb

    auth = account(client)
    cut = PHOTO_A.read_bytes()[:3000]
    for data, status in (
        (b"", 422),
        (b"plain text, not a photo", 422),
        (cut, 422),
        (webp_bomb(), 422),
        (b"\xff" * (21 * 1024 * 1024), 413),
    ):
        response = upload(client, auth, data=data)
        assert response.status_code == status and isinstance(response.json()["detail"], str), response.text
    assert client.post("/api/analyses", headers=auth).status_code == 422  # no file at all
    assert client.get("/api/analyses", headers=auth).json()["total"] == 0


def test_exif_never_stored_and_the_photo_only_on_request(client, tmp_path):
    auth = account(client)
    image = Image.open(PHOTO_A)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 30.0)}  # GPS latitude
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    kept = upload(client, auth, data=buffer.getvalue(), keep_photo=True).json()["id"]
    dropped = upload(client, auth, data=buffer.getvalue()).json()["id"]
    from sqlalchemy import select

    from skin_infer.serve.db import Analysis

    with client.app.state.sessions() as db:
        rows = {r.id: r for r in db.scalars(select(Analysis))}
    assert rows[dropped].photo_jpeg is None
    stored = Image.open(io.BytesIO(rows[kept].photo_jpeg))
    assert stored.size == image.size and len(stored.getexif()) == 0
    assert b"SecretCam" not in rows[kept].photo_jpeg and b"SecretCam" not in rows[kept].overlay_png


def test_migrations_are_recorded_and_idempotent(tmp_path, analyzer):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    create_app(Settings(db_url=url, analyzer=analyzer))
    create_app(Settings(db_url=url, analyzer=analyzer))  # the next start, or the next version, upgrades in place
    with sqlite3.connect(tmp_path / "m.sqlite3") as db:
        assert db.execute("select version_num from alembic_version").fetchall() == [("0001",)]
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"users", "tokens", "analyses", "alembic_version"} <= tables


# -- a real server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, *extra) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the server) a file: a full pipe would block it
    proc = subprocess.Popen(
        [str(BIN / "skin"), "serve", "--port", str(port), "--db", str(db), "--threads", "1", *map(str, extra)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    log.seek(0)
    raise AssertionError(log.read().decode())


def real_account(base: str) -> dict:
    httpx.post(f"{base}/api/users", json={"username": "dana", "password": "correct horse"})
    token = httpx.post(f"{base}/api/login", json={"username": "dana", "password": "correct horse"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def burst(base: str, auth: dict, n: int) -> list[httpx.Response | Exception]:
    results: list = [None] * n

    def one(i):
        try:
            results[i] = httpx.post(
                f"{base}/api/analyses",
                files={"file": (f"p{i}.jpg", PHOTO_B.read_bytes(), "image/jpeg")},
                data={"taken_at": date(2026, 3, 1 + i % 28).isoformat()},
                headers=auth,
                timeout=120,
            )
        except httpx.HTTPError as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_real_server_sheds_load_and_survives_kill_9(tmp_path):
    db, port = tmp_path / "live.sqlite3", free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(db, port, "--queue", "1")
    try:
        auth = real_account(base)
        answers = burst(base, auth, 8)
        codes = sorted(r.status_code for r in answers if isinstance(r, httpx.Response))
        assert 201 in codes and 503 in codes and set(codes) <= {201, 503}, codes
        assert all(r.headers["retry-after"] for r in answers if isinstance(r, httpx.Response) and r.status_code == 503)
        created = {r.json()["id"] for r in answers if isinstance(r, httpx.Response) and r.status_code == 201}
        # kill -9 in the middle of another burst: every upload answered 201 must be there after a restart
        killer = threading.Timer(1.0, lambda: os.kill(server.pid, signal.SIGKILL))
        killer.start()
        during = burst(base, auth, 6)
        killer.join()
        server.wait(timeout=30)
        created |= {r.json()["id"] for r in during if isinstance(r, httpx.Response) and r.status_code == 201}
    finally:
        server.kill()
    with sqlite3.connect(db) as check:
        assert check.execute("pragma integrity_check").fetchone() == ("ok",)
    server = start_server(db, port, "--light", "scene")  # options reach the analysis, as skin-infer's do
    try:
        listed = httpx.get(f"{base}/api/analyses?limit=100", headers=auth).json()
        assert created <= {item["id"] for item in listed["items"]}
        assert all(item["result"]["status"] == "ok" for item in listed["items"])
        assert {item["result"]["light"]["method"] for item in listed["items"]} == {"none"}  # the default
        [fresh] = burst(base, auth, 1)
        assert fresh.status_code == 201 and fresh.json()["result"]["light"]["method"] == "scene"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.skipif(shutil.which("initdb") is None and not Path("/usr/lib/postgresql").is_dir(), reason="no PostgreSQL")
def test_postgresql_shared_by_two_server_processes():
    """A real PostgreSQL cluster in a temp dir, two `skin serve` processes on it: one database, one history."""
    pytest.importorskip("psycopg")
    bindir = (
        next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
        if Path("/usr/lib/postgresql").is_dir()
        else None
    )
    initdb = str(bindir / "initdb") if bindir else shutil.which("initdb")
    pg_ctl = str(bindir / "pg_ctl") if bindir else shutil.which("pg_ctl")
    # PostgreSQL refuses to run as root: as root, the cluster runs as the OS package's `postgres` user, in a
    # folder it can reach (pytest's own temp folders are private to root)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="skin-pg-"))
    data, sock = home / "pg", home / "sock"
    sock.mkdir()
    if as_postgres:
        for path in (home, sock):
            shutil.chown(path, "postgres")
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-U", "skin", "--auth=trust"], check=True, capture_output=True
    )
    pg_port = free_port()
    options = f"-p {pg_port} -k {sock} -c listen_addresses=''"
    # -l: the server's output goes to a file; a captured pipe would stay open in the server and hang this call
    start = [*as_postgres, pg_ctl, "-D", str(data), "-l", str(home / "pg.log"), "-o", options, "-w", "start"]
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    try:
        url = f"postgresql+psycopg://skin@/postgres?host={sock}&port={pg_port}"
        ports = free_port(), free_port()
        servers = [start_server(url, p) for p in ports]
        try:
            first, second = (f"http://127.0.0.1:{p}" for p in ports)
            auth = real_account(first)
            made = httpx.post(
                f"{first}/api/analyses", files={"file": ("a.jpg", PHOTO_A.read_bytes())}, headers=auth, timeout=120
            )
            assert made.status_code == 201
            seen = httpx.get(f"{second}/api/analyses", headers=auth).json()  # the other process, the same history
            assert [i["id"] for i in seen["items"]] == [made.json()["id"]]
        finally:
            for s in servers:
                s.terminate()
                s.wait(timeout=30)
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
