"""An adopted MariaDB run natively answers only its own project (issue 26).

The declaration `init --from` writes for the mariadb image (hotmode.adopt.images), run for real
with Debian's `mariadb-server` (skipped where it is not installed): grant tables on, root's
password the mode's generated secret set before the server ever listens, the app's user with its
own. Another local user (`nobody`) gets in with no password, a guess, or the user's name. Run in
PID, network and mount namespaces of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import as_nobody
from hotmode.adopt.images import _mariadb_native
from hotmode.config import load_config
from hotmode.modes import Selection
from hotmode.native import companions
from namespace import in_namespace

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    # The database outlives `start` by design (`stop` ends it): its Popen object says so when
    # collected, which is no fault here.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.skipif(
        not shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or not shutil.which("setpriv"),
        reason="needs Debian's mariadb-server and setpriv",
    ),
    pytest.mark.skipif(os.getuid() != 0, reason="running as another user (nobody) needs root"),
]

DEV = Selection("dev", "default", "test", "test")
IMAGE_ENV = {"MARIADB_DATABASE": "shop", "MARIADB_USER": "shop",
             "MARIADB_PASSWORD_FILE": "{secrets}/db_password"}  # fmt: skip


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture
def root() -> Iterator[Path]:
    # mysql runs as its own user: the project must be reachable by it (pytest's folders are not).
    parent = Path(subprocess.check_output(["mktemp", "-d", "/tmp/hotmode-mariadb.XXXXXX"],
                                          text=True).strip())  # fmt: skip
    parent.chmod(0o755)
    project = parent / "shop"
    (project / "app").mkdir(parents=True)
    declared = _mariadb_native(IMAGE_ENV)
    assert declared is not None
    native = "\n".join(f"{k} = {_toml(v)}" for k, v in declared.items())
    (project / "hotmode.toml").write_text(
        'name = "shop"\nsource = "app"\n\n[services.db]\nimage = "mariadb:11"\nport = 3306\n'
        f'environment = {_toml(IMAGE_ENV)}\nsecrets = ["db_password"]\n\n'
        f"[services.db.native]\n{native}\n"
    )
    yield project
    shutil.rmtree(parent)


def _select(
    port: int, user: str, password: str, *, nobody: bool
) -> subprocess.CompletedProcess[str]:
    argv = ["mariadb", "--host=127.0.0.1", f"--port={port}", f"--user={user}",
            "--execute=SELECT CURRENT_USER()", "shop"]  # fmt: skip
    env = {"MYSQL_PWD": password} if password else {}
    if nobody:
        return as_nobody(*argv, env=env)
    return subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


@in_namespace
def test_another_local_user_cannot_get_into_an_adopted_mariadb(root: Path) -> None:
    config = load_config(root / "hotmode.toml")
    said: list[str] = []
    try:
        companions.start(config, DEV, said.append, engine=lambda: False)
        record = json.loads((root / ".hotmode" / "companions.json").read_text())
        port = int(record["companions"][0]["port"])
        secrets = root / ".hotmode" / "secrets" / "dev-default"
        password = (secrets / "db_password").read_text().strip()
        root_password = password  # no root secret declared: root has the app user's

        mine = _select(port, "shop", password, nobody=False)
        assert mine.returncode == 0 and "shop@%" in mine.stdout, mine.stderr
        assert _select(port, "root", root_password, nobody=False).returncode == 0
        for user, guess in [("root", ""), ("shop", ""), ("shop", "shop"), ("nobody", ""),
                            ("root", "root")]:  # fmt: skip
            tried = _select(port, user, guess, nobody=True)
            assert tried.returncode != 0, (user, guess, tried.stdout)
            assert "Access denied" in tried.stderr, (user, guess, tried.stderr)
        # The password is on no command line.
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            with contextlib.suppress(OSError):
                assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        companions.stop(config)
