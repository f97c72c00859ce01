"""`check -f` on real projects' Compose files: every service gets the role a reviewer gives it.

The files are fourteen public Python backends (and compose-lint's own fixtures), kept beside
the repository in `../shared/corpus` with where each came from; they are read from there, never
copied in. Only the Compose files (and a few committed env files) are there: no Dockerfile and
no source, as in a CI checkout of a deployment folder. The roles below are a reviewer's, written
from reading the files; the check must reach them from the evidence alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import corpus
from hotmode.audit import checker
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Report
from hotmode.audit.rules import ALL_KINDS
from hotmode.errors import ComposeError

CORPUS = corpus()

A, W, J, C, X = "app", "worker", "job", "companion", "other"
ROLES: dict[str, dict[str, str]] = {
    "01-prod": {"proxy": C, "db": C, "adminer": C, "backend": A},
    # playwright runs the browser tests against the backend: not Python, not the app.
    "01-dev": {"proxy": C, "db": C, "adminer": C, "backend": A, "mailpit": C, "playwright": X},
    "02-dev": {"web": A, "db": C},
    "02-prod": {"web": A, "db": C, "nginx": C},
    "03-dev": {"web": A, "db": C},
    "03-prod": {"web": A, "db": C, "nginx": C},
    # web-db is a postgres built from ./project/db: the app connects to it by a postgres:// URL.
    "04-dev": {"web": A, "web-db": C},
    "05-dev": {
        "fastapi_server": A, "database": C, "redis_server": C, "celery_worker": W,
        "celery_beat": W, "minio_server": C,
        "caddy_reverse_proxy": C,
    },
    "06-prod": {"fnano": A, "caddy": C},
    "07-prod": {"app": A, "db": C},
    # The app ships as an image; the worker and the housekeeping loop reuse it.
    "08-prod": {
        "netbox": A, "netbox-worker": W, "netbox-housekeeping": W, "postgres": C, "redis": C,
        "redis-cache": C,
    },
    "09-prod": {"db": C, "web": A},
    "10-dev": {"server": A, "scheduler": W, "worker": W, "redis": C, "postgres": C, "email": C},
    "11-dev": {
        "plane-redis": C, "plane-mq": C, "plane-minio": C, "plane-db": C, "api": A, "worker": W,
        "beat-worker": W, "migrator": J,
    },
    # web, admin, space and live are Node frontends; proxy is the nginx in front of them all.
    "11-prod": {
        "web": X, "admin": X, "space": X, "api": A, "worker": W, "beat-worker": W, "migrator": J,
        "live": X, "plane-db": C, "plane-redis": C, "plane-mq": C, "plane-minio": C, "proxy": C,
    },
    # taiga-front (Angular), taiga-events (Node) and taiga-protected (an attachment signer)
    # ship as images that nothing here says are the app.
    "12-prod": {
        "taiga-db": C, "taiga-back": A, "taiga-async": W, "taiga-async-rabbitmq": C,
        "taiga-front": X, "taiga-events": X, "taiga-events-rabbitmq": C, "taiga-protected": X,
        "taiga-gateway": C,
    },
    "13-prod": {"mealie": A},
    "14-prod": {"db": C, "backend": A, "proxy": C},
    "15-mixed": {"traefik": C, "web": C, "db": C},
    "15-clean": {"web": C},
}  # fmt: skip
# File sets Compose itself refuses, rightly: exit 2 with the reason.
REFUSED = {
    "05-prod": "depends on undefined service",
    "15-legacy": "v1 format",
    "15-selfhosted": "pids_limit",
}


def _runs() -> dict[str, tuple[Path, str, list[str]]]:
    runs = {}
    for line in (CORPUS / "runs.txt").read_text().splitlines():
        if line.startswith("run "):
            _, label, folder, mode, *files = line.split()
            runs[label] = (CORPUS / folder, mode, files)
    return runs


RUNS = _runs()


def _check(label: str, monkeypatch: pytest.MonkeyPatch) -> Report:
    folder, mode, files = RUNS[label]
    monkeypatch.chdir(folder)
    return checker.check([checker.file_stack([Path(f) for f in files], mode)])


def test_the_corpus_lists_every_run_once() -> None:
    assert set(RUNS) == set(ROLES) | set(REFUSED)


@pytest.mark.parametrize("label", sorted(ROLES))
def test_every_service_gets_the_reviewer_s_role(
    label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _check(label, monkeypatch)
    (roles,) = report.roles.values()
    judged = {name: role.kind.value for name, role in roles.items()}
    assert judged == ROLES[label], {n: r.reason for n, r in roles.items()}
    assert all(role.reason for role in roles.values())
    # No app rule fires on a companion or an "other", and nothing says "does not reload"
    # about a server it cannot see.
    rules = load_rules()
    for finding in report.findings:
        registered = rules.get(finding.rule_id)
        per_service = registered is not None and registered.service_check is not None
        if per_service and registered.kinds != ALL_KINDS and finding.service:
            assert roles[finding.service].kind in registered.kinds, finding
        assert "does not reload" not in finding.message, finding
    # No Dockerfile is here: what only an image or its context can tell is unknown, not a fact.
    assert not [f for f in report.findings if f.rule_id in {"HM-P05", "HM-P06", "HM-P08"}]
    # Where no service is the app, the report says so instead of skipping the app rules.
    if A not in judged.values():
        assert any(u.rule_id == "HM-A06" and u.service is None for u in report.unknowns)


@pytest.mark.parametrize("label", sorted(REFUSED))
def test_file_sets_compose_refuses_exit_2_with_the_reason(
    label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ComposeError, match=REFUSED[label]):
        _check(label, monkeypatch)


def test_a_reloader_hidden_in_a_script_or_an_image_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev = _check("11-dev", monkeypatch)
    (hidden,) = [u for u in dev.unknowns if u.rule_id == "HM-D01"]
    assert hidden.service == "api" and "docker-entrypoint-api-local.sh" in hidden.reason
    prod = _check("11-prod", monkeypatch)
    unsure = {u.service for u in prod.unknowns if u.rule_id == "HM-P02"}
    assert unsure == {"api", "worker", "beat-worker"}
    assert not [f for f in prod.findings if f.rule_id == "HM-P02"]


def test_the_evidence_that_decided_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = _check("04-dev", monkeypatch).roles
    (judged,) = roles.values()
    assert "connects to it as postgres" in judged["web-db"].reason
    (judged,) = _check("12-prod", monkeypatch).roles.values()
    assert "taiga-back" in judged["taiga-async"].reason
    (judged,) = _check("14-prod", monkeypatch).roles.values()
    assert "in front of backend" in judged["proxy"].reason
