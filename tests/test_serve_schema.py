"""`skin serve`'s OpenAPI schema is true to every answer: Schemathesis generates requests for each operation from
the schema (valid and invalid ones), sends them to the real app with a live account, and checks no 5xx, status
codes the schema declares, bodies and content types that match it. Bounded for CI: a few examples per operation.
Also the bound on concurrent password hashes, measured as the memory real Argon2id calls hold."""

import itertools

import pytest

schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from test_serve import analyzer  # noqa: E402, F401 (the module's fixture)

from skin_infer.serve.app import Settings, create_app  # noqa: E402

PASSWORD = "correct horse"
names = (f"fuzz{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def app(tmp_path_factory, analyzer):  # noqa: F811
    db = tmp_path_factory.mktemp("schema") / "db.sqlite3"
    # limits high enough that the fuzzer's many sign-ups and logins are answered, not throttled (429 is tested
    # in test_serve_security.py)
    return create_app(Settings(db_url=f"sqlite:///{db}", analyzer=analyzer, signups_per_address=10_000,
                               login_attempts=10_000))  # fmt: skip


@pytest.fixture(scope="module")
def account(app):
    """A bearer header for a live account; a new account when a case logged out, changed or deleted it."""
    client = TestClient(app)
    state = {}

    def header() -> dict:
        auth = state.get("auth")
        if auth is None or client.get("/api/analyses", headers=auth).status_code == 401:
            name = next(names)
            assert client.post("/api/users", json={"username": name, "password": PASSWORD}).status_code == 201
            token = client.post("/api/login", json={"username": name, "password": PASSWORD}).json()["token"]
            state["auth"] = {"Authorization": f"Bearer {token}"}
        return state["auth"]

    return header


def test_every_answer_matches_the_schema(app, account):
    """Each operation of /openapi.json, valid and invalid requests (Schemathesis' default generation), with a live
    account: no 5xx, only declared status codes, bodies and content types as the schema says."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            headers = None if case.headers and "Authorization" in case.headers else account()
            # an upload's bytes are schema-valid whatever they are; that they must be a photo is the one rule the
            # schema cannot state (the 422 names the file and why)
            upload = case.operation.path == "/api/analyses" and case.method == "POST"
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance] if upload else None)

        check()


HASH_PEAK = """
import sys, tempfile, threading
from pathlib import Path
from fastapi.testclient import TestClient
from skin_infer.serve.app import Settings, create_app
from skin_infer.runtime.options import AnalysisOptions

def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024

db = Path(tempfile.mkdtemp()) / "db.sqlite3"
app = create_app(Settings(db_url=f"sqlite:///{db}", hashing=int(sys.argv[1]), signups_per_address=100,
                          analysis=AnalysisOptions(model="none", parser="haar")))
client = TestClient(app)
client.post("/api/users", json={"username": "warm", "password": "correct horse"})
base = hwm()
threads = [threading.Thread(target=client.post, args=("/api/users",),
                            kwargs={"json": {"username": f"user{i}", "password": "correct horse"}}) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(hwm() - base)
"""


def test_concurrent_password_hashes_are_bounded():
    """Eight sign-ups at once: with the default bound (2 hashes at once) the server's peak memory grows by at most
    about two Argon2id hashes (64 MiB each); without a bound (8) by about eight: the bound is what holds it."""
    import subprocess
    import sys

    def growth(bound: int) -> float:
        proc = subprocess.run([sys.executable, "-c", HASH_PEAK, str(bound)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return float(proc.stdout.split()[-1])

    bounded, unbounded = growth(Settings.hashing), growth(8)
    assert bounded <= 2 * 64 + 40, bounded
    assert unbounded >= 5 * 64, unbounded  # the measurement sees what an unbounded server would hold
