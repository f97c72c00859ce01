"""A native app's database in Docker answers only its own project (issue 26).

Beside a native app, the companion runs in a container published on 127.0.0.1, where every local
user can reach it: it gets the mode's generated password (as a local process does), never the
published dev-only one, and the app is given the same. A data volume initialised earlier with
another password is said once, in one line, and kept as it is.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from docker_support import Gateway, require_engine
from helpers import as_nobody, free_port, get_json, run_hotmode, wait_until
from hotmode.compose import docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

require_engine()

DEV_DATA = "linkedin-gateway-dev_pgdata"
PUBLISHED = "gateway-dev-only"  # the declaration's published dev-only value
needs_nobody = pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv") or not shutil.which("psql"),
    reason="connecting as another local user (nobody) needs root, setpriv and psql",
)


def psql(port: int, password: str, *, nobody: bool = False) -> subprocess.CompletedProcess[str]:
    """`SELECT 1` as the database's user, with `password`, by the developer or by nobody."""
    argv = ["psql", "--host=127.0.0.1", f"--port={port}", "--username=gateway", "--no-password",
            "--dbname=gateway", "--no-psqlrc", "--command=SELECT 1"]  # fmt: skip
    if nobody:
        return as_nobody(*argv, env={"PGPASSWORD": password})
    return subprocess.run(
        argv, env={"PATH": os.environ["PATH"], "PGPASSWORD": password},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@needs_nobody
def test_another_local_user_cannot_connect_with_the_published_password(deployed: Gateway) -> None:
    docker.docker("volume", "rm", DEV_DATA, check=False)
    try:
        up = run_hotmode(deployed.root, "up", "--native", "--dev", "--detach", "--port",
                         str(deployed.port))  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        assert "made before with another password" not in up.stdout
        refused = psql(5432, PUBLISHED, nobody=True)
        assert refused.returncode != 0, refused.stdout
        assert "password authentication failed" in refused.stderr, refused.stderr
        info = get_json(deployed.port)
        assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
        secret = deployed.root / ".hotmode" / "secrets" / "dev-core" / "db_password"
        password = secret.read_text().strip()
        assert password != PUBLISHED and len(password) >= 24
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        # The copy the engine mounts is in a folder no other local user can enter.
        copy = secret.parent / "containers" / "db_password"
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
        assert as_nobody("cat", str(copy)).returncode != 0
        # Nor is it on any command line or in the container's published configuration files.
        assert password not in (deployed.root / ".hotmode" / "native-postgres.yml").read_text()

        mine = psql(5432, password)
        assert mine.returncode == 0, mine.stderr
    finally:
        down = run_hotmode(deployed.root, "down")
    assert down.returncode == 0, down.stderr


def test_a_volume_made_with_another_password_is_said_once_and_kept(deployed: Gateway) -> None:
    # The dev database's volume as `hotmode up --dev` in Docker (or an earlier hotmode) left it:
    # initialised with the published dev-only password.
    docker.docker("volume", "rm", DEV_DATA, check=False)
    port = free_port()
    earlier = docker.docker(
        "run", "--detach", "--network", "host", "--user", "postgres",
        "--volume", f"{DEV_DATA}:/var/lib/postgresql/data",
        "--env", "POSTGRES_USER=gateway", "--env", "POSTGRES_DB=gateway",
        "--env", f"POSTGRES_PASSWORD={PUBLISHED}", "--env", "POSTGRES_LISTEN=127.0.0.1",
        "hotmode-postgres:bookworm", "postgres", "-p", str(port),
    ).stdout.strip()  # fmt: skip
    try:
        wait_until(lambda: psql(port, PUBLISHED).returncode == 0, timeout=120)
    finally:
        docker.docker("rm", "--force", earlier)
    try:
        up = run_hotmode(deployed.root, "up", "--native", "--dev", "--detach", "--port",
                         str(deployed.port))  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        said = [line for line in up.stdout.splitlines() if "made before" in line]
        assert len(said) == 1, up.stdout
        assert DEV_DATA in said[0] and f"docker volume rm {DEV_DATA}" in said[0]
        # The data is kept, with its password: nothing was changed behind the user's back.
        assert psql(5432, PUBLISHED).returncode == 0
        down = run_hotmode(deployed.root, "down")
        assert down.returncode == 0, down.stderr
        again = run_hotmode(deployed.root, "up", "--native", "--dev", "--detach", "--port",
                            str(deployed.port))  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "made before" not in again.stdout
    finally:
        run_hotmode(deployed.root, "down")
    assert DEV_DATA in docker.docker("volume", "ls", "--quiet").stdout.split()
