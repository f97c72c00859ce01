"""Small Compose projects on disk for the audit tests, and reading their reports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from hotmode.audit import checker
from hotmode.audit.model import Finding, Report

REVISION = "org.opencontainers.image.revision"
PROBE = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
DOCKERFILE = """\
FROM python:3.12-slim
ARG REVISION=unknown
LABEL org.opencontainers.image.revision=$REVISION
COPY . /app
USER 10001:10001
"""
DOCKERIGNORE = ".env\n.env.*\n!.env.example\n"

# A prod service that passes every prod rule, hotmode's and compose-lint's at medium and above.
GOOD_PROD: dict[str, Any] = {
    "build": {"context": "../app"},
    "image": "app:prod",
    "command": ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"],
    "ports": ["127.0.0.1:8000:8000"],
    "volumes": ["./.env:/app/.env:ro"],
    "environment": {"DEBUG": "false", "LOG_LEVEL": "info"},
    "read_only": True,
    "tmpfs": ["/tmp"],
    "user": "10001:10001",
    "security_opt": ["no-new-privileges:true"],
    "cap_drop": ["ALL"],
    "deploy": {"resources": {"limits": {"memory": "256M", "cpus": "0.5"}}},
    "healthcheck": {"test": ["CMD", "python", "-c", PROBE]},
    "restart": "unless-stopped",
    "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
}

# What dev adds on top of GOOD_PROD: its own tag, the source mounted, reload, writable root.
GOOD_DEV = """\
services:
  web:
    image: app:dev
    command: ["uvicorn", "main:app", "--reload", "--host", "0.0.0.0", "--port", "8000"]
    volumes: !override
      - ../app:/app
    environment:
      PYTHONPYCACHEPREFIX: /tmp/pycache
    read_only: false
"""


class Project:
    """A folder with `app/` (the source and its Dockerfile) and `deploy/` (Compose files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.app = root / "app"
        self.deploy = root / "deploy"
        self.app.mkdir()
        self.deploy.mkdir()
        (self.app / "Dockerfile").write_text(DOCKERFILE)
        (self.app / ".dockerignore").write_text(DOCKERIGNORE)
        (self.app / "main.py").write_text("app = None\n")

    def write(self, name: str, content: str | dict[str, Any]) -> Path:
        path = self.deploy / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    def prod(self, **changes: Any) -> Path:
        """The base file: GOOD_PROD with `changes` (a None value removes the key)."""
        service = copy.deepcopy(GOOD_PROD)
        for key, value in changes.items():
            if value is None:
                service.pop(key, None)
            else:
                service[key] = value
        return self.write("docker-compose.yml", {"name": "app", "services": {"web": service}})

    def check(self, mode: str, *files: Path) -> Report:
        return checker.check([checker.file_stack(files, mode)])


def counted(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.suppressed is None]


def rule_ids(report: Report) -> set[str]:
    return {f.rule_id for f in counted(report)}


def only(report: Report, rule_id: str) -> list[Finding]:
    return [f for f in counted(report) if f.rule_id == rule_id]
