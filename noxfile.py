"""The reload engine against every uvicorn it accepts (see src/hotmode/reload/compat.py).

    nox -s uvicorn_range      # the reload and handover suites on the oldest and newest uvicorn
    nox -s uvicorn_too_old    # below the range: said at start, reloads without the handover

`make compat` runs both (CI runs it after `make test`).
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

COMPAT = (Path(__file__).parent / "src" / "hotmode" / "reload" / "compat.py").read_text()
OLDEST = re.search(r'^OLDEST = "([^"]+)"', COMPAT, re.M).group(1)  # type: ignore[union-attr]
NEWEST = re.search(r'^NEWEST_TESTED = "([^"]+)"', COMPAT, re.M).group(1)  # type: ignore[union-attr]
TOO_OLD = "0.21.1"  # the last release before the range
# The WSGI suites too (Flask, Django, Falcon, Pyramid through a2wsgi on each uvicorn).
TEST_DEPS = ("pytest>=8", "pytest-timeout>=2.3", "websockets>=13", "fastapi>=0.110",
             "flask>=3", "django>=4.2", "falcon>=3", "pyramid>=2")  # fmt: skip

nox.options.sessions = ["uvicorn_range", "uvicorn_too_old"]


@nox.session
@nox.parametrize("uvicorn", [OLDEST, NEWEST])
def uvicorn_range(session: nox.Session, uvicorn: str) -> None:
    session.install("-e", ".", *TEST_DEPS, f"uvicorn=={uvicorn}")
    session.run("python", "-m", "pytest", "tests/reload", "-q", "-p", "no:cacheprovider",
                *session.posargs)  # fmt: skip


@nox.session
def uvicorn_too_old(session: nox.Session) -> None:
    session.install("-e", ".", *TEST_DEPS)
    session.install("--no-deps", f"uvicorn=={TOO_OLD}")  # what an app pinning it would have
    session.run("python", "-m", "pytest", "tests/reload/test_e2e.py", "-q", "-p",
                "no:cacheprovider", "-k", "older_than_the_range", *session.posargs)  # fmt: skip
