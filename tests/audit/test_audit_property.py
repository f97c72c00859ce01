"""Generated and mutated Compose files and declarations: a report, or a clean exit-2 error.

Each example runs the real Compose binary (tens of milliseconds), so the example counts are kept
small; the point is breadth of shapes, not volume.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audit.audit_support import GOOD_PROD
from hotmode.audit import checker, report
from hotmode.audit.model import Report, Severity
from hotmode.compose.render import render_files, write_files
from hotmode.config import load_config
from hotmode.errors import HotmodeError
from hotmode.modes import all_selections

# HOTMODE_EXAMPLES=300 explores further by hand; the suite keeps it to seconds.
EXAMPLES = int(os.environ.get("HOTMODE_EXAMPLES", "16"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 ._-/:=$@{}?!#*&'\"\\\n\t[],~")), max_size=24
) | (st.sampled_from(["${A:-b}", "${A:?}", "$$", "${", "/app", "0", "root"]))
SCALARS = st.none() | st.booleans() | st.integers(-3, 70000) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "image",
        "build",
        "command",
        "entrypoint",
        "volumes",
        "ports",
        "environment",
        "user",
        "read_only",
        "tmpfs",
        "healthcheck",
        "restart",
        "logging",
        "labels",
        "deploy",
        "env_file",
        "working_dir",
        "security_opt",
        "cap_drop",
        "extends",
    ]
)
SHAPED = {
    "volumes": st.lists(
        st.sampled_from(
            [
                "../app:/app",
                "/app/__pycache__",
                "./.env:/app/.env",
                "logs:/app/logs",
                "/var/run/docker.sock:/s",
            ]
        )
        | TEXT,
        max_size=4,
    ),
    "ports": st.lists(
        st.sampled_from(["8000:8000", "127.0.0.1:80:80", "${P:-1}:2"]) | TEXT, max_size=3
    ),
    "command": st.sampled_from(["uvicorn main:app --reload", "sh -c 'pip install x && run'"])
    | st.lists(TEXT, max_size=4),
    "healthcheck": st.fixed_dictionaries(
        {
            "test": st.sampled_from(
                [["CMD", "curl", "-f", "http://x"], "wget -q x", ["CMD-SHELL", "exit 0"]]
            )
        }
    ),
    "image": st.sampled_from(
        ["python:3.12-slim", "app:prod", "app:dev", "alpine", "x@sha256:" + "a" * 64]
    ),
    "build": st.sampled_from(["../app", {"context": "../app", "target": "dev"}, {"context": "."}]),
    "user": st.sampled_from(["root", "0:0", "10001", "${U:-1000}:${G:-1000}", "app"]),
    "read_only": st.booleans(),
    "restart": st.sampled_from(["no", "always", "unless-stopped", "on-failure"]),
    "tmpfs": st.sampled_from(["/tmp", ["/tmp", "/run"], ["/tmp:size=1m,exec"]]),
    "environment": st.dictionaries(
        st.sampled_from(["DEBUG", "LOG_LEVEL", "SECRET_KEY", "X"]),
        st.sampled_from(["true", "debug", "${SECRET_KEY:-x}", "1"]) | TEXT,
        max_size=3,
    )
    | st.lists(st.sampled_from(["DEBUG=true", "A"]), max_size=2),
    "logging": st.sampled_from(
        [
            {"driver": "json-file"},
            {"driver": "local"},
            {"driver": "none"},
            {"options": {"max-size": "1m"}},
        ]
    ),
}


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    service = dict(GOOD_PROD) if draw(st.booleans()) else {"image": "python:3.12-slim"}
    for key in draw(st.lists(KEYS, max_size=5, unique=True)):
        strategy = SHAPED.get(key, VALUES)
        value = draw(st.one_of(strategy, strategy, strategy, VALUES))
        if value is None and draw(st.booleans()):
            service.pop(key, None)
        else:
            service[key] = value
    return service


@st.composite
def compose_texts(draw: st.DrawFn) -> str:
    document: dict[str, Any] = {
        "services": {draw(st.sampled_from(["web", "a", "web-2"])): draw(services())}
    }
    if draw(st.booleans()):
        document["name"] = draw(st.sampled_from(["app", "App Name", ""]) | TEXT)
    if draw(st.booleans()):
        document["volumes"] = {"logs": None}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if draw(st.integers(0, 3)) == 0:
        # Mutate the text itself: cut a slice, or splice in something.
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        text = (
            text[:start]
            + draw(st.sampled_from(["", "\n  - ", ": [", "&a", "*a", "\t", "!reset"]))
            + text[end:]
        )
    return text


def _assert_usable(result: Report) -> None:
    for output in (
        report.text(result, Severity.MEDIUM, Path.cwd()),
        report.to_json(result, Severity.MEDIUM, Path.cwd()),
        report.to_sarif(result, Path.cwd()),
    ):
        assert output
    json.loads(report.to_sarif(result, Path.cwd()))


def _check_or_exit_2(run: Any) -> None:
    try:
        result = run()
    except HotmodeError as exc:
        assert exc.exit_code == 2, exc
        assert "\n" not in str(exc).strip()
        event(f"exit 2: {type(exc).__name__}")
        return
    event("report")
    _assert_usable(result)


@SETTINGS
@given(
    texts=st.lists(compose_texts(), min_size=1, max_size=2), mode=st.sampled_from(["prod", "dev"])
)
def test_any_compose_files_give_a_report_or_exit_2(texts: list[str], mode: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "app").mkdir()
        (root / "app" / "Dockerfile").write_text("FROM python:3.12-slim\n")
        files = []
        for index, text in enumerate(texts):
            path = root / f"compose{index}.yml"
            path.write_text(text)
            files.append(path)
        _check_or_exit_2(lambda: checker.check([checker.file_stack(files, mode)]))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


NAMES = st.sampled_from(["app", "my-app", "api_2"]) | st.sampled_from(["App", "", "-x"]) | TEXT
DECLARATION = st.fixed_dictionaries(
    {"name": NAMES, "source": st.sampled_from(["src", ".", "missing"])},
    optional={
        "port": st.integers(-1, 70000) | TEXT,
        "target": st.sampled_from(["main:app", "pkg.mod:api", "nope"]),
        "edition_variable": st.sampled_from(["APP_EDITION", "1BAD"]),
        "default_mode": st.sampled_from(["dev", "prod", "staging"]),
        "base_image": st.sampled_from(["python:3.12-slim", "python:3.12-alpine"]) | TEXT,
        "editions": st.dictionaries(
            st.sampled_from(["core", "saas", "pro", "dev", "x y"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "default": st.booleans(),
                    "env_file": st.sampled_from([".env.saas", ""]),
                    "env": st.dictionaries(st.sampled_from(["A", "B"]), TEXT),
                },
            ),
            max_size=3,
        ),
        "dev": st.fixed_dictionaries(
            {},
            optional={
                "log_level": st.sampled_from(["debug", "loud"]),
                "env": st.dictionaries(st.sampled_from(["DEBUG"]), TEXT),
            },
        ),
    },
)


@settings(SETTINGS, max_examples=max(EXAMPLES // 2, 1))
@given(declaration=DECLARATION)
def test_any_declaration_gives_a_report_or_exit_2(declaration: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "src").mkdir()
        lines = [f"{k} = {_toml(v)}" for k, v in declaration.items()]
        (root / "hotmode.toml").write_text("\n".join(lines) + "\n")

        def run() -> Report:
            config = load_config(root / "hotmode.toml")
            write_files(render_files(config))
            return checker.check(checker.declared_stacks(config, all_selections(config)))

        _check_or_exit_2(run)
