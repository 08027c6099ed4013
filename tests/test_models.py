"""`skin models pull`: real downloads over HTTP on 127.0.0.1, checksum refusal, interrupted transfers."""

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from shared_data import PHOTOS, YUNET

from skin_infer.runtime import BundleError, SkinInferError, make_finder, pull
from skin_infer.runtime.downloads import REGISTRY, cache_dir, cached_path

BIN = Path(sys.executable).parent
GOOD = (YUNET / "yunet_s_640_640.onnx").read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int]] = {}  # path -> (body, bytes actually sent before hanging up)

    def do_GET(self):
        if self.path == "/trickle.onnx":  # one byte every half second: never trips a per-read timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            for byte in GOOD[:20]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
            return
        body, send = self.routes.get(self.path, (None, 0))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:send])
        self.wfile.flush()
        self.connection.close()  # a short send is a connection dropped mid-transfer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    Handler.routes = {
        "/yunet.onnx": (GOOD, len(GOOD)),
        "/tampered.onnx": (GOOD[:-1] + b"\x00", len(GOOD)),
        "/cut.onnx": (GOOD, len(GOOD) // 3),
        "/long.onnx": (GOOD + b"\x00" * 4096, len(GOOD) + 4096),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_registry_pin_matches_the_shared_copy():
    import hashlib

    source = REGISTRY["yunet"]
    assert hashlib.sha256(GOOD).hexdigest() == source.sha256 and len(GOOD) == source.size


def test_pull_downloads_verifies_and_auto_uses_it(server, monkeypatch):
    from skin_infer.runtime import defaults

    monkeypatch.setattr(defaults, "_shipped", lambda *parts: None)  # an install without the shipped YuNet
    assert cached_path("yunet") is None and make_finder("auto").name == "haar"
    seen = []
    path = pull("yunet", f"{server}/yunet.onnx", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == GOOD and path.parent == cache_dir()
    assert seen[-1] == (len(GOOD), len(GOOD))
    assert make_finder("auto").name == "yunet"


@pytest.mark.parametrize(
    "route,words",
    [
        ("/tampered.onnx", "pinned checksum"),
        ("/cut.onnx", "interrupted after 77,529 of 232,589"),
        ("/missing.onnx", "404"),
        ("/long.onnx", "more than the 232,589 bytes"),
    ],
)
def test_bad_downloads_leave_nothing(server, route, words):
    with pytest.raises(SkinInferError, match=words):
        pull("yunet", f"{server}{route}")
    assert cached_path("yunet") is None
    assert list(cache_dir().iterdir()) == []  # no partial file either


def test_trickling_server_is_cut_off_by_the_deadline(server):
    start = time.monotonic()
    with pytest.raises(SkinInferError, match="too slow"):
        pull("yunet", f"{server}/trickle.onnx", deadline=2)
    assert time.monotonic() - start < 10 and list(cache_dir().iterdir()) == []


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/yunet.onnx", "htp:/x"])
def test_bad_urls_are_refused_clearly(url):
    with pytest.raises(SkinInferError, match="not a download URL"):
        pull("yunet", url)


def test_unwritable_cache_is_a_clear_error(server, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SKIN_INFER_HOME", str(blocker / "cache"))
    with pytest.raises(SkinInferError, match="cannot be written.*SKIN_INFER_HOME"):
        pull("yunet", f"{server}/yunet.onnx")


def test_damaged_cache_is_found_once_and_named(server, monkeypatch):
    from skin_infer.runtime import defaults

    monkeypatch.setattr(defaults, "_shipped", lambda *parts: None)
    path = pull("yunet", f"{server}/yunet.onnx")
    assert cached_path("yunet") == path  # verified and remembered
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    for call in (lambda: cached_path("yunet"), lambda: make_finder("auto")):
        with pytest.raises(BundleError, match="damaged.*skin models pull yunet"):
            call()
    pull("yunet", f"{server}/yunet.onnx")
    assert cached_path("yunet") == path


def test_unreachable_host_fails_fast():
    with pytest.raises(SkinInferError, match="failed"):
        pull("yunet", "http://127.0.0.1:9/yunet.onnx", timeout=5)


def test_cli_pull_then_infer_uses_yunet(server, tmp_path):
    env = {"SKIN_INFER_HOME": str(tmp_path / "home"), "PATH": str(BIN), "COLUMNS": "250"}
    pulled = subprocess.run(
        [str(BIN / "skin"), "models", "pull", "yunet", "--url", f"{server}/yunet.onnx"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert pulled.returncode == 0 and "sha256 verified" in pulled.stderr
    listed = subprocess.run([str(BIN / "skin"), "models", "list"], capture_output=True, text=True, env=env)
    assert "face_detection_yunet_2023mar.onnx" in listed.stdout
    inferred = subprocess.run(
        [str(BIN / "skin-infer"), str(PHOTOS[0]), "--parser", "yunet"], capture_output=True, text=True, env=env
    )
    assert inferred.returncode == 0 and "faces: yunet" in inferred.stderr
    bad = subprocess.run(
        [str(BIN / "skin"), "models", "pull", "yunet", "--url", f"{server}/tampered.onnx"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "pinned checksum" in bad.stderr
