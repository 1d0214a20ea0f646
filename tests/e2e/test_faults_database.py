"""PostgreSQL restarted under the API: a private PostgreSQL this test starts itself (never the
machine's shared one), the API in gunicorn on it, real concurrent HTTP requests. While the
database is down the API answers 503 `database_unavailable` in the error shape (never a 500),
nothing is half-written, and once it is back the API serves again without being restarted.

No hypervisor: the host is libvirt's fake one and no worker runs (operations stay queued, the
outbox's own tests cover what happens next)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_lab import (
    ApiServer,
    PrivatePostgres,
    PrivateRedis,
    django_command,
    django_env,
)

LOAD_THREADS = 6
CREATE_EVERY = 0.5  # seconds, per client


@dataclass
class Lab:
    postgres: PrivatePostgres
    api: ApiServer
    env: dict[str, str]
    tokens: list[str]
    image: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One private PostgreSQL, Redis and API for the module's tests (each test has its own
    tenants): a tenant per load thread, and one more."""
    tmp_path = tmp_path_factory.mktemp("database-lab")
    postgres = PrivatePostgres()
    broker = PrivateRedis(Path(postgres.directory))
    api: ApiServer | None = None
    try:
        postgres.init()
        broker.start()
        env = django_env(
            postgres.url,
            broker.url,
            # Kept connections, as a production API keeps them: a restart leaves every one of
            # them dead, and the API must notice by itself.
            DATABASE_CONN_MAX_AGE="600",
            ANDROMEDE_THROTTLE_RATES=json.dumps({"token": None, "user": None}),
            ANDROMEDE_DEFAULT_QUOTAS=json.dumps(
                {"instances": -1, "vcpus": -1, "ram_mb": -1, "disk_gb": -1}
            ),
            ANDROMEDE_VAR_DIR=str(tmp_path / "var"),
        )
        django_command(env, "migrate", "-v0")
        seeded = json.loads(django_command(env, "seed", str(LOAD_THREADS + 1)))
        api = ApiServer(env, tmp_path / "gunicorn.log")
        yield Lab(postgres, api, env, seeded["tokens"], seeded["image"])
    finally:
        if api is not None:
            api.stop()
        broker.stop()
        postgres.cleanup()


def create(lab: Lab, name: str, token: str) -> tuple[int, Any, dict[str, str]]:
    """POST an instance named `name`, its name as its Idempotency-Key."""
    return lab.api.request(
        "POST", "/api/v1/instances", token,
        {"name": name, "flavor": "small", "image": lab.image},
        headers={"Idempotency-Key": f"create-{name}"},
    )  # fmt: skip


def assert_database_unavailable(status: int, body: Any, headers: dict[str, str]) -> None:
    assert status == 503, (status, body)
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "database_unavailable", body
    assert body["error"]["message"]
    assert body["error"]["details"] == {}
    assert int(headers["Retry-After"]) > 0
    assert headers.get("X-Request-Id")


def test_requests_fail_with_503_while_the_database_is_down_and_nothing_is_half_written(
    lab: Lab,
):
    # (verb, instance name, token, status, body, headers)
    answers: list[tuple[str, str, str, int, Any, dict[str, str]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        """Reads without pause, a create every CREATE_EVERY seconds (its tenant's network
        has a /27: at most 2 creates a second over the 8 s run, retries included)."""
        token = lab.tokens[worker]
        n, next_create = 0, 0.0
        while not stop.is_set():
            if time.monotonic() >= next_create:
                next_create = time.monotonic() + CREATE_EVERY
                n += 1
                name = f"w{worker}-{n}"
                answer = ("POST", name, token, *create(lab, name, token))
            else:
                answer = ("GET", "", token, *lab.api.request("GET", "/api/v1/instances", token))
            with lock:
                answers.append(answer)
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        lab.postgres.stop("immediate")  # a crash: backends killed mid-transaction
        crashed_at = len(answers)
        time.sleep(3)
        lab.postgres.start()  # crash recovery on the same data
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert crashed_at > 0, "no request was served before the crash"

    statuses = [answer[3] for answer in answers]
    print(f"\n{len(answers)} answers: " + ", ".join(
        f"{statuses.count(s)} x {s}" for s in sorted(set(statuses))
    ))  # fmt: skip
    odd = [a[:2] + a[3:5] for a in answers if a[3] not in (200, 202, 503)]
    assert not odd, odd
    unavailable = [a for a in answers if a[3] == 503]
    assert unavailable, "the crash was not seen by any request"
    for *_, status, body, headers in unavailable:
        assert_database_unavailable(status, body, headers)
    # The API came back by itself: the last answers of every thread are successes again.
    assert all(status in (200, 202) for status in statuses[-2 * LOAD_THREADS :]), statuses[-20:]

    # Nothing half-written: every instance in the database is whole, and every accepted
    # create is in the database.
    census = json.loads(django_command(lab.env, "census"))
    whole = {"operations": 1, "allocations": 1, "ports": 1, "audit_events": 1}
    broken = [row for row in census["instances"] if {k: row[k] for k in whole} != whole]
    assert not broken, broken
    rows = len(census["instances"])
    assert census["operations"] == census["allocations"] == census["ports"] == rows
    stored = {row["name"]: row["id"] for row in census["instances"]}
    accepted = {a[1]: a[4]["instance"]["id"] for a in answers if a[3] == 202}
    assert accepted.items() <= stored.items()

    # A refused create may be sent again with its Idempotency-Key: each becomes exactly one
    # instance (never a second one for a create that had committed before its answer failed).
    refused = [(a[1], a[2]) for a in answers if a[0] == "POST" and a[3] == 503]
    assert refused, "no create was refused during the crash"
    for name, token in refused:
        status, body, headers = create(lab, name, token)
        assert status == 202, (status, body)
    census = json.loads(django_command(lab.env, "census"))
    names = [row["name"] for row in census["instances"]]
    attempted = [a[1] for a in answers if a[0] == "POST"]
    assert sorted(n for n in names if n.startswith("w")) == sorted(attempted)
    assert "audit chain OK" in django_command(lab.env, "audit_verify")


def test_the_api_reconnects_by_itself_after_a_database_restart(lab: Lab):
    token = lab.tokens[LOAD_THREADS]  # a tenant of its own

    def burst(count: int) -> list[tuple[int, Any, dict[str, str]]]:
        """`count` parallel reads: enough to reach every gunicorn thread."""
        results: list[tuple[int, Any, dict[str, str]]] = []
        lock = threading.Lock()

        def one() -> None:
            answer = lab.api.request("GET", "/api/v1/instances", token)
            with lock:
                results.append(answer)

        threads = [threading.Thread(target=one) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return results

    assert {status for status, _, _ in burst(32)} == {200}  # every thread holds a connection
    assert create(lab, "before", token)[0] == 202

    lab.postgres.stop("fast")  # kept connections are all closed by the server
    down = [create(lab, "during", token), lab.api.request("GET", "/api/v1/instances", token)]
    for status, body, headers in down:
        assert_database_unavailable(status, body, headers)
    # The portal too (its session lives in the database): a 503 page, not a server error.
    status, body, headers = lab.api.request(
        "GET", "/", token, headers={"Cookie": "sessionid=" + "a" * 32}
    )
    assert status == 503, (status, body)
    assert int(headers["Retry-After"]) > 0
    lab.postgres.start()

    # No restart of the API, no failed request: each thread finds its connection dead
    # before using it, and opens a new one.
    after = burst(32)
    assert [status for status, _, _ in after] == [200] * 32, [a[:2] for a in after if a[0] != 200]
    status, body, _ = create(lab, "after", token)
    assert status == 202, body
    census = json.loads(django_command(lab.env, "census"))
    names = {row["name"] for row in census["instances"]}
    assert {"before", "after"} <= names
    assert "during" not in names
