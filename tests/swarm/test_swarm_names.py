"""Swarm objects that rotate and follow the stack, local files as configs, and spec drift.

Pure tests of the translation: secrets and configs named by their content (a rotation is a new
name), volume names that follow `--stack`, read-only bind mounts carried as configs (nothing
local reaches another node), stateful services stop-first and pinned; and `verify --swarm`'s
comparison of a live service spec with the rendered one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotmode.compose.prod import ProdConfig
from hotmode.errors import UsageError
from hotmode.orchestrate.stack import _moment
from hotmode.orchestrate.swarm import Target, rendered_target, stack_document
from hotmode.orchestrate.swarm_verify import spec_drift


def _document(tmp_path: Path, stack: str, *, host: bool = False) -> dict[str, Any]:
    init = tmp_path / "init"
    init.mkdir(exist_ok=True)
    (init / "001-schema.sql").write_text("create table t (id int);\n")
    merged = {
        "services": {
            "web": {
                "image": "shop:prod", "build": {"context": "."}, "user": "10001",
                "volumes": [{"type": "volume", "source": "logs", "target": "/app/logs"}],
                "secrets": [{"source": "db_password", "target": "/run/secrets/db_password"}],
                "ports": [{"target": 8000, "published": "8000"}],
            },
            "db": {
                "image": "postgres:16",
                "volumes": [
                    {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"},
                    {"type": "bind", "source": str(init), "target": "/docker-entrypoint-initdb.d",
                     "read_only": True},
                ],
                "secrets": [{"source": "db_password", "target": "/run/secrets/db_password"}],
            },
        },
        "volumes": {"logs": {"name": "shop_logs"}, "pgdata": {"name": "shop_pgdata"},
                    "old": {"external": True, "name": "kept"}},
        "secrets": {"db_password": {"file": str(tmp_path / "db_password")}},
    }  # fmt: skip
    prod = ProdConfig("core", "shop", (), merged, {})
    return stack_document(
        prod, stack=stack, revision="abc", host_network=host, deployment=tmp_path
    ).document


def test_a_changed_secret_is_a_new_name_and_names_follow_the_stack(tmp_path: Path) -> None:
    (tmp_path / "db_password").write_text("one")
    first = _document(tmp_path, "blue")
    name = first["secrets"]["db_password"]["name"]
    assert name.startswith("blue_db_password_") and len(name) == len("blue_db_password_") + 12
    assert _document(tmp_path, "blue")["secrets"] == first["secrets"]
    (tmp_path / "db_password").write_text("two")
    assert _document(tmp_path, "blue")["secrets"]["db_password"]["name"] != name
    assert _document(tmp_path, "green")["secrets"]["db_password"]["name"].startswith("green_")
    assert first["volumes"] == {
        "logs": {"name": "blue_logs"},
        "pgdata": {"name": "blue_pgdata"},
        "old": {"external": True, "name": "kept"},
    }


def test_a_read_only_bind_mount_is_a_config_per_file(tmp_path: Path) -> None:
    (tmp_path / "db_password").write_text("one")
    document = _document(tmp_path, "blue")
    db = document["services"]["db"]
    assert all(volume["type"] != "bind" for volume in db["volumes"])
    assert db["configs"] == [
        {"source": "db_001-schema.sql", "target": "/docker-entrypoint-initdb.d/001-schema.sql",
         "mode": 0o444},
    ]  # fmt: skip
    config = document["configs"]["db_001-schema.sql"]
    assert config["file"] == str(tmp_path / "init" / "001-schema.sql")
    assert config["name"].startswith("blue_db_001-schema.sql_")


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"type": "bind", "source": "/srv/data", "target": "/data"}, "writable"),
        ({"type": "bind", "source": "/nowhere/x", "target": "/x", "read_only": True},
         "does not exist"),
    ],
)  # fmt: skip
def test_a_bind_mount_that_cannot_travel_is_refused(
    tmp_path: Path, volume: dict[str, Any], message: str
) -> None:
    prod = ProdConfig(
        "core", "s", (), {"services": {"web": {"image": "x", "volumes": [volume]}}}, {}
    )
    with pytest.raises(UsageError, match=rf"services\.web\.volumes\.0 .*{message}"):
        stack_document(prod, stack="s", revision="a", host_network=True, deployment=tmp_path)


def test_on_ingress_the_app_starts_first_and_the_database_stops_first_pinned(
    tmp_path: Path,
) -> None:
    document = _document(tmp_path, "blue")
    web, db = document["services"]["web"]["deploy"], document["services"]["db"]["deploy"]
    assert web["update_config"]["order"] == "start-first" and "placement" not in web
    assert db["update_config"]["order"] == "stop-first"
    assert db["placement"] == {"constraints": ["node.labels.hotmode.blue.db == true"]}
    hosted = _document(tmp_path, "blue", host=True)["services"]["web"]["deploy"]
    assert hosted["update_config"]["order"] == "stop-first"


def test_the_header_gives_back_the_target() -> None:
    header = "# Swarm stack blue for prod saas (host network), images from 10.9.0.1:5000: `x`\n"
    assert rendered_target(header) == Target("saas", "blue", True, "10.9.0.1:5000")
    assert rendered_target("# Swarm stack blue for prod core: `x`\n") == Target("core", "blue")
    assert rendered_target("no header") is None


def test_docker_timestamps_with_nanoseconds() -> None:
    early, late = _moment("2026-12-06T12:00:00.123456789Z"), _moment("2026-12-06T12:00:01.5Z")
    assert (late - early).total_seconds() == pytest.approx(1.376544, abs=1e-6)


RENDERED = {
    "image": "shop:abc",
    "environment": {"PORT": "8000", "MODE": "prod"},
    "user": "10001",
    "read_only": True,
    "cap_drop": ["ALL"],
    "volumes": [{"type": "volume", "source": "logs", "target": "/app/logs"},
                {"type": "tmpfs", "target": "/tmp"}],
    "secrets": [{"source": "pw", "target": "/run/secrets/pw"}],
}  # fmt: skip
DOCUMENT = {"volumes": {"logs": {"name": "blue_logs"}}, "secrets": {"pw": {"name": "blue_pw_1"}}}
LIVE = {
    "Image": "shop:abc@sha256:0",
    "Env": ["PORT=8000", "MODE=prod"],
    "User": "10001",
    "ReadOnly": True,
    "CapabilityDrop": ["ALL"],
    "Mounts": [{"Type": "volume", "Source": "blue_logs", "Target": "/app/logs"},
               {"Type": "tmpfs", "Target": "/tmp"}],
    "Secrets": [{"SecretName": "blue_pw_1", "File": {"Name": "/run/secrets/pw"}}],
}  # fmt: skip


def test_a_service_as_rendered_has_no_drift() -> None:
    assert spec_drift(RENDERED, LIVE, DOCUMENT) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Env": [*LIVE["Env"], "LOG_LEVEL=DEBUG"]}, "environment LOG_LEVEL is set but not"),
        ({"Env": ["PORT=9000", "MODE=prod"]}, "environment PORT differs"),
        ({"Env": ["PORT=8000"]}, "environment MODE is rendered but not set"),
        ({"Mounts": LIVE["Mounts"][:1]}, "tmpfs mount at /tmp is missing"),
        ({"Mounts": [*LIVE["Mounts"], {"Type": "bind", "Source": "/x", "Target": "/x"}]},
         "a bind mount  at /x is not in the rendered file"),
        ({"Secrets": [{"SecretName": "blue_pw_0", "File": {"Name": "/run/secrets/pw"}}]},
         "secret blue_pw_0 at /run/secrets/pw runs only"),
        ({"User": "0"}, "user 0 is not the rendered 10001"),
        ({"ReadOnly": False}, "read_only differs"),
        ({"CapabilityDrop": []}, "cap_drop [] is not the rendered ['ALL']"),
        ({"Image": "shop:old"}, "image shop:old is not the rendered shop:abc"),
    ],
)  # fmt: skip
def test_each_drift_is_named(change: dict[str, Any], expected: str) -> None:
    problems = spec_drift(RENDERED, {**LIVE, **change}, DOCUMENT)
    assert any(expected in problem for problem in problems), problems
