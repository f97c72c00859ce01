"""`verify --swarm`'s reading of NoNewPrivs, on real containers of the shared engine.

Swarm has no per-service no-new-privileges, so only the engine's setting gives it; verify reads
the kernel's word (`/proc/<pid>/status`) for each task's process. Two containers of the base
image, one with the option and one without, give both answers; the CI engine is started without
`--no-new-privileges`, so the one without really can gain privileges.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from docker_support import require_engine
from hotmode.compose import docker
from hotmode.orchestrate.swarm_verify import no_new_privs, privilege_problem

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

require_engine()


@pytest.fixture
def containers(base_image: str) -> Iterator[dict[str, str]]:
    names = {}
    try:
        for key, options in (("off", []), ("on", ["--security-opt", "no-new-privileges:true"])):
            name = f"hotmode-nnp-{key}-{uuid.uuid4().hex[:8]}"
            docker.docker("run", "--detach", "--name", name, "--network", "host", *options,
                          base_image, "sleep", "120")  # fmt: skip
            names[key] = name
        yield names
    finally:
        for name in names.values():
            docker.docker("rm", "--force", name, check=False)


def test_no_new_privileges_is_read_from_the_kernel(containers: dict[str, str]) -> None:
    assert no_new_privs(containers["on"]) == "1"
    assert no_new_privs(containers["off"]) == "0"
    assert privilege_problem(containers["on"], {}) is None
    problem = privilege_problem(containers["off"], {})
    assert problem is not None and not problem[1] and "NoNewPrivs: 0" in problem[0]
    waived = privilege_problem(containers["off"], {"HM-S01": "the engine enforces it"})
    assert waived is not None and waived[1] and "waived: the engine enforces it" in waived[0]
