"""The project's marker in a process's environment is not proof on its own (issue 26).

Any local user can start a process carrying `HOTMODE_PROJECT=<your project>` (and a run id, even
one copied from the world-readable records). hotmode believes the marker only for a process of its
own user, or of the user it ran a companion as with the run id it wrote for it. Another user's
marked process is named in one line, never signalled, never claimed as stopped, and never keeps
`up` from starting. In PID, network and mount namespaces of its own, the other user `nobody`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import get_json, wait_until
from namespace import in_namespace
from native_support import Project, pid_alive

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.getuid() != 0 or not shutil.which("setpriv"),
        reason="starting another local user's process (nobody) needs root and setpriv",
    ),
]


def start_as_nobody(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process of the user nobody, in a session of its own (as hotmode starts its servers)."""
    return subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sleep", "600"],
        env={"PATH": "/usr/bin:/bin", **env},
        start_new_session=True,
        cwd="/",
    )


@in_namespace
def test_another_users_marked_process_is_named_never_stopped_and_never_blocks_up(
    project: Project,
) -> None:
    marker = {"HOTMODE_PROJECT": str(project.root), "HOTMODE_RUN_ID": "0123456789ab"}
    as_server = start_as_nobody({**marker, "HOTMODE_MODE": "dev", "HOTMODE_EDITION": "core"})
    as_companion = start_as_nobody({**marker, "HOTMODE_COMPANION": "postgres"})
    strangers = (as_server.pid, as_companion.pid)
    try:
        wait_until(lambda: all(os.path.exists(f"/proc/{pid}/environ") for pid in strangers), 10)

        up = project.up("--prod")
        assert up.returncode == 0, up.stderr
        info = get_json(project.port)
        assert info is not None and info.get("mode") == "prod"
        for pid in strangers:
            assert f"hotmode: note: pid {pid} (uid 65534) carries this project's marker, but " \
                "hotmode did not start it" in up.stdout, up.stdout  # fmt: skip

        server = project.server_pid()
        down = project.hotmode("down", "--native")
        assert down.returncode == 0, down.stderr
        assert f"hotmode: stopped prod core (pid {server})" in down.stdout
        for pid in strangers:
            assert str(pid) not in down.stdout, down.stdout  # never claimed as stopped
            assert f"pid {pid} (uid 65534) carries this project's marker" in down.stderr
            assert pid_alive(pid)
        assert as_server.poll() is None and as_companion.poll() is None
        wait_until(lambda: not pid_alive(server), 10)

        # Again, with the run id of a record hotmode wrote (records are readable by anyone).
        again = project.up("--prod")
        assert again.returncode == 0, again.stderr
        copied = {**marker, "HOTMODE_RUN_ID": project.state()["server"]["run_id"]}
        mimic = start_as_nobody({**copied, "HOTMODE_MODE": "prod", "HOTMODE_EDITION": "core"})
        try:
            wait_until(lambda: os.path.exists(f"/proc/{mimic.pid}/environ"), 10)
            down = project.hotmode("down", "--native")
            assert down.returncode == 0, down.stderr
            assert str(mimic.pid) not in down.stdout
            assert mimic.poll() is None
        finally:
            mimic.kill()
            mimic.wait(timeout=10)
    finally:
        for stranger in (as_server, as_companion):
            stranger.kill()
            stranger.wait(timeout=10)
