"""The StatefulSet's data path, proven by simulation with this machine's PostgreSQL.

No cluster runs here, so the kubelet's part is done by hand, as it does it: the claim's root is
a folder owned by root, made the pod's `fsGroup`'s (group-writable, setgid) and holding the
file system's own `lost+found`. Then Debian's PostgreSQL (the same major line as the image's
server) runs as the uid and gid the rendered pod runs as, with the `PGDATA` the rendered
ConfigMap gives: `initdb` and a start must succeed. The layout rendered before (the claim
mounted with `subPath: data`, a folder the kubelet makes as root) must fail the same way a
cluster failed. The uid is this machine's `postgres` user's, given to the render as
`--stateful postgres=UID:GID`, since `initdb` refuses a uid without a passwd entry (the image
uses nss_wrapper for that).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import RunCli
from helpers import commit, git

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)

pytestmark = pytest.mark.skipif(
    BIN is None or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs Debian's PostgreSQL (.ci/postgres-setup), root and setpriv",
)


def _postgres_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user on this machine")
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def volume() -> Iterator[Path]:
    """A folder outside the test's private tmp (which only root may enter), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="hotmode-k8s-volume-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _kubelet_mount(root: Path, fs_group: int) -> Path:
    """The claim's root as the kubelet leaves it with `fsGroup`: root's, the group's,
    group-writable and setgid, holding `lost+found`."""
    mount = root / "claim"
    mount.mkdir()
    (mount / "lost+found").mkdir(mode=0o700)
    os.chown(mount, 0, fs_group)
    mount.chmod(0o2775)
    return mount


def _run_as(
    uid: int, gid: int, script: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`script` as uid:gid (with fsGroup among its groups, as the kubelet adds it), in a PID
    namespace of its own, so that nothing it starts outlives it."""
    drop = f"setpriv --reuid={uid} --regid={gid} --groups={gid} --"
    return subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-ec", script.replace("AS", drop)],
        env={**env, "PATH": f"{BIN}:/usr/bin:/bin"}, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip


START = """
AS initdb --pgdata="$PGDATA" --username=probe --auth=trust --encoding=UTF8 >/dev/null
AS pg_ctl --pgdata="$PGDATA" --log="$RUN/log" --wait --timeout=120 \
    --options="-k $RUN -c listen_addresses=" start >/dev/null
AS psql --host="$RUN" --username=probe --dbname=postgres --tuples-only --no-align \
    --command="SELECT current_setting('data_directory')"
AS pg_ctl --pgdata="$PGDATA" --wait --timeout=60 stop >/dev/null
"""


def _documents(folder: Path) -> list[dict[str, Any]]:
    return [
        d for p in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]


def test_the_rendered_statefulset_initialises_and_starts_postgres_on_a_kubelet_made_volume(
    gateway: Path, run_cli: RunCli, volume: Path
) -> None:
    uid, gid = _postgres_ids()
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    code, _, err = run_cli("render", "--k8s", "--stateful", f"postgres={uid}:{gid}", cwd=gateway)
    assert code == 0, err
    documents = _documents(gateway / "deployment" / "k8s" / "base")
    database = next(d for d in documents if d["kind"] == "StatefulSet")
    pod = database["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == gid
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    container = pod["containers"][0]
    assert container["securityContext"]["runAsUser"] == uid
    claim = next(m for m in container["volumeMounts"] if m["name"] == "pgdata")
    assert "subPath" not in claim
    environment = next(
        d for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "linkedin-gateway-postgres-env"
    )["data"]  # fmt: skip
    pgdata = environment["PGDATA"]
    mount_path = Path(claim["mountPath"])
    assert mount_path in Path(pgdata).parents
    # The release does not restart the database: the revision is on the app's template only.
    assert "hotmode.dev/revision" not in database["spec"]["template"]["metadata"]["annotations"]

    mount = _kubelet_mount(volume, gid)
    run = volume / "run"
    run.mkdir(mode=0o700)
    os.chown(run, uid, gid)
    data = mount / Path(pgdata).relative_to(mount_path)
    result = _run_as(uid, gid, START, {"PGDATA": str(data), "RUN": str(run)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == str(data)
    # The database made its folder itself, with the modes it asks for, inside the group's mount.
    assert stat.S_IMODE(data.stat().st_mode) & 0o077 == 0
    assert data.stat().st_uid == uid


def test_the_old_subpath_layout_cannot_initialise(volume: Path) -> None:
    """`subPath: data` with the default PGDATA: the kubelet makes `data` as root, and initdb,
    running as the database's uid, cannot take it (what a cluster showed)."""
    uid, gid = _postgres_ids()
    mount = _kubelet_mount(volume, gid)
    data = mount / "data"
    data.mkdir(mode=0o755)
    run = volume / "run"
    run.mkdir(mode=0o700)
    os.chown(run, uid, gid)
    result = _run_as(uid, gid, START, {"PGDATA": str(data), "RUN": str(run)})
    assert result.returncode != 0
    assert "could not change permissions of directory" in result.stderr, result.stderr
