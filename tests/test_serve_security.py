"""`skin serve` against an attacker and a careless user, on a real server on 127.0.0.1 where bytes on the wire
matter: bodies refused before they are read, trickling bodies cut, limits that cannot be raced, sessions that
end, accounts a user controls, errors people can read, offline /docs."""

import concurrent.futures
import contextlib
import csv
import io
import socket
import sqlite3
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from shared_data import FACES  # noqa: E402
from test_serve import PHOTO_A, analyzer, free_port, start_server  # noqa: E402, F401 (the module's fixture)

from skin_infer.serve.app import Limiter, Settings, create_app  # noqa: E402

PASSWORD = "correct horse"


@pytest.fixture
def client(tmp_path, analyzer):  # noqa: F811
    with TestClient(create_app(Settings(db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", analyzer=analyzer))) as c:
        yield c


def login(client, name="erin", password=PASSWORD, signup=True) -> dict:
    if signup:
        assert client.post("/api/users", json={"username": name, "password": password}).status_code == 201
    token = client.post("/api/login", json={"username": name, "password": password}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def upload(client, auth, path=PHOTO_A, data=None):
    files = {"file": (Path(path).name, data if data is not None else Path(path).read_bytes(), "image/jpeg")}
    return client.post("/api/analyses", files=files, headers=auth)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("srv") / "db.sqlite3"
    port = free_port()
    proc = start_server(db, port, "--max-upload-mb", "5")
    yield f"http://127.0.0.1:{port}", port
    proc.terminate()
    proc.wait(timeout=30)


def raw(port: int, head: str, body: bytes = b"", wait: float = 10.0) -> str:
    """Send a request's head (and perhaps part of its body) and return what the server answers, unread rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        return sock.recv(65536).decode("latin-1")


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(server):
    _, port = server
    started = time.monotonic()
    answer = raw(port, "POST /api/analyses HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                       f"Content-Length: {120 * 1024 * 1024}\r\n")  # fmt: skip
    assert answer.startswith("HTTP/1.1 401") and time.monotonic() - started < 5  # not one body byte was sent


def test_a_huge_json_body_is_refused_by_its_length_and_never_echoed(server):
    base, port = server
    answer = raw(port, "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {150 * 1024 * 1024}\r\n")  # fmt: skip
    assert answer.startswith("HTTP/1.1 413")
    secret = "s3cr3t"
    reply = httpx.post(f"{base}/api/users", json={"username": "fay", "password": secret})
    assert reply.status_code == 422 and secret not in reply.text
    assert reply.json()["detail"] == "password: 8 to 256 characters"


def test_a_trickling_body_is_cut(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        )
        started = time.monotonic()
        answer = b""
        while not answer and time.monotonic() - started < 25:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(2)
            with contextlib.suppress(TimeoutError):
                answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 20


def test_simultaneous_wrong_logins_cannot_overrun_the_limit(server):
    base, _ = server
    httpx.post(f"{base}/api/users", json={"username": "gus", "password": PASSWORD})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: httpx.post(f"{base}/api/login", json={"username": "gus", "password": "x" * 9},
                                                   timeout=60).status_code, range(8)))  # fmt: skip
    assert codes.count(401) == 5 and codes.count(429) == 3, codes


def test_the_limiter_forgets_and_stays_small():
    limiter = Limiter(5, 0.05, max_keys=100)
    for i in range(1000):
        assert limiter.take(f"made-up-{i}") == 0.0
    assert len(limiter.events) <= 100
    time.sleep(0.1)
    limiter.take("one more")
    assert len(limiter.events) <= 100


def test_signups_are_limited_per_address(client):
    codes = [
        client.post("/api/users", json={"username": f"user{i}", "password": PASSWORD}).status_code for i in range(7)
    ]
    assert codes == [201] * 5 + [429, 429]


def test_login_costs_the_same_for_unknown_users(client):
    login(client, "hal")

    def timed(name):
        start = time.perf_counter()
        assert client.post("/api/login", json={"username": name, "password": "wrong password"}).status_code == 401
        return time.perf_counter() - start

    known = np.median([timed("hal") for _ in range(3)])
    unknown = np.median([timed(f"nobody{i}") for i in range(3)])
    assert 0.5 < unknown / known < 2.0  # both verify an Argon2 hash (an unknown name once answered at once)


def test_logout_ends_the_session_on_the_server(client):
    auth = login(client)
    assert client.get("/api/analyses", headers=auth).status_code == 200
    assert client.post("/api/logout", headers=auth).status_code == 204
    assert client.get("/api/analyses", headers=auth).status_code == 401


def test_a_new_password_ends_the_other_sessions(client):
    phone = login(client)
    laptop = login(client, signup=False)
    wrong = client.post("/api/password", json={"password": "not it at all", "new_password": "battery staple"},
                        headers=laptop)  # fmt: skip
    assert wrong.status_code == 403
    changed = client.post("/api/password", json={"password": PASSWORD, "new_password": "battery staple"},
                          headers=laptop)  # fmt: skip
    assert changed.status_code == 204
    assert client.get("/api/analyses", headers=phone).status_code == 401
    assert client.get("/api/analyses", headers=laptop).status_code == 200
    assert login(client, password="battery staple", signup=False)


def test_deleting_an_account_leaves_nothing_behind(client, tmp_path):
    auth = login(client)
    other = login(client, "ivy")
    for _ in range(2):
        assert upload(client, auth).status_code == 201
    assert upload(client, other).status_code == 201
    assert client.request("DELETE", "/api/users/me", json={"password": "nope nope"}, headers=auth).status_code == 403
    assert client.request("DELETE", "/api/users/me", json={"password": PASSWORD}, headers=auth).status_code == 204
    assert client.get("/api/analyses", headers=auth).status_code == 401
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("select username from users").fetchall() == [("ivy",)]
        assert db.execute("select count(*) from analyses").fetchone() == (1,)
        assert db.execute("select count(*) from tokens where user_id != (select id from users)").fetchone() == (0,)


def test_history_exports_as_json_and_csv(client):
    auth = login(client)
    assert upload(client, auth).status_code == 201
    as_json = client.get("/api/export", headers=auth)
    assert as_json.status_code == 200 and "attachment" in as_json.headers["content-disposition"]
    [record] = as_json.json()
    assert record["result"]["faces"]
    as_csv = client.get("/api/export?format=csv", headers=auth)
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and {r["analysis_id"] for r in rows} == {str(record["id"])} and "acne_label" in rows[0]
    assert client.get("/api/export?format=xml", headers=auth).status_code == 422


def test_out_of_range_ids_and_offsets_are_4xx(client):
    auth = login(client)
    for path in ("/api/analyses/99999999999999999999", "/api/analyses/0", "/api/analyses?offset=-1",
                 "/api/analyses?limit=100000", "/api/analyses?offset=99999999999999999999"):  # fmt: skip
        assert client.get(path, headers=auth).status_code == 422, path


def test_security_headers_and_offline_docs(client):
    page = client.get("/")
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text and client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert "/static-offline-docs/redoc" in client.get("/redoc").text


def test_overlays_are_stored_downscaled(client):
    auth = login(client)
    big = cv2.resize(cv2.imread(str(FACES / "photos" / "fairface_White_aligned.jpg")), (3000, 3000))
    reply = upload(client, auth, data=cv2.imencode(".jpg", big)[1].tobytes())
    assert reply.status_code == 201
    png = client.get(f"/api/analyses/{reply.json()['id']}/overlay.png", headers=auth).content
    assert max(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[:2]) == 1280


def test_a_storage_failure_is_a_json_error(client, tmp_path):
    auth = login(client)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute("drop table analyses")
    reply = client.get("/api/analyses", headers=auth)
    assert reply.status_code == 503 and "database" in reply.json()["detail"]


def test_uploads_over_the_cap_are_refused_with_a_sentence(client):
    auth = login(client)
    reply = upload(client, auth, data=b"\xff\xd8" + bytes(25 * 1024 * 1024))
    assert reply.status_code == 413 and "larger than" in reply.json()["detail"]
    threading.Event().wait(0)  # the server goes on
    assert upload(client, auth).status_code == 201
