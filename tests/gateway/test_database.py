"""The gateway's API keys on its embedded SQLite: create, list, revoke, and what server-info says.

The gateway runs as a real uvicorn process on 127.0.0.1, on a real SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLE
from helpers import free_port, get_json, wait_until

pytestmark = pytest.mark.e2e


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - 127.0.0.1
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def gateway_process(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[int, Path]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOTMODE_MODE")}
    env.update(GATEWAY_DATA_DIR=str(tmp_path / "data"), LOG_DIR=str(tmp_path / "logs"))
    env.update(getattr(request, "param", {}))
    log = tmp_path / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(EXAMPLE / "backend"),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_until(lambda: get_json(port, "/health") or process.poll() is not None, timeout=30)
        assert process.poll() is None, log.read_text()
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_api_keys_are_created_listed_and_revoked(
    gateway_process: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = gateway_process
    status, key = call(port, "POST", "/api/v1/api-keys", {"name": "extension"})
    assert status == 201
    assert str(key["key"]).startswith("lg_") and key["prefix"] == str(key["key"])[:11]

    status, listed = call(port, "GET", "/api/v1/api-keys")
    keys = listed["keys"]
    assert isinstance(keys, list)
    assert [(k["id"], k["name"], k["revoked"]) for k in keys] == [(key["id"], "extension", False)]
    assert "key" not in keys[0]  # shown once, stored only as a hash

    assert call(port, "DELETE", f"/api/v1/api-keys/{key['id']}")[1]["revoked"] is True
    assert call(port, "DELETE", "/api/v1/api-keys/999")[0] == 404
    assert (tmp_path / "data" / "gateway.sqlite3").is_file()


def test_the_embedded_database_is_said_at_start_and_reported_reachable(
    gateway_process: tuple[int, Path], tmp_path: Path
) -> None:
    port, log = gateway_process
    info = get_json(port)
    assert info is not None
    assert info["database"] == {"backend": "sqlite", "reachable": True}
    said = [line for line in log.read_text().splitlines() if line.startswith("gateway: database")]
    assert said == [
        f"gateway: database SQLite at {tmp_path / 'data' / 'gateway.sqlite3'} "
        "(the embedded default: DATABASE_URL is not set)"
    ]


@pytest.mark.parametrize(
    "gateway_process",
    [{"DATABASE_URL": f"postgresql+asyncpg://gateway@127.0.0.1:{free_port()}/gateway"}],
    indirect=True,
)
def test_a_database_that_does_not_answer_is_reported_unreachable_and_the_app_serves(
    gateway_process: tuple[int, Path],
) -> None:
    port, log = gateway_process
    info = get_json(port)
    assert info is not None
    assert info["database"] == {"backend": "postgresql", "reachable": False}
    assert "gateway: database unreachable at start" in log.read_text()
