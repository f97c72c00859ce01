"""A native app's companion in Docker: its mode's own container, published on 127.0.0.1.

The container carries this project's folder, the run and the companion as labels; `down` acts on
those labels, never on a record. Its data volume is the mode's own and outlives it. Its secrets
are the mode's generated ones (`secret_store`), as a local process's are, never the published
dev-only values: it listens on 127.0.0.1, where every local user can reach it. The engine mounts
them from a folder no other local user can enter. A data volume found already made that hotmode
has not seen natively was initialised with another password: said once, in one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hotmode.atomic import write_atomic
from hotmode.compose import companions as rendered
from hotmode.config import Config
from hotmode.errors import ComposeError, StateError
from hotmode.modes import Selection
from hotmode.native import companion_record, secret_store
from hotmode.native.companion_record import Entry
from hotmode.services import Companion

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def start(
    config: Config,
    selection: Selection,
    companion: Companion,
    run_id: str,
    port: int,
    say: Callable[[str], None],
) -> Entry:
    """Start one companion in Docker, published on 127.0.0.1:`port` for the native app."""
    from hotmode.compose import docker, layout
    from hotmode.compose.engine import find_compose

    spec = companion.spec(selection.mode)
    # The app is on the host: publish the companion on 127.0.0.1, in this mode's own project,
    # labelled with this project's folder: `down` acts on these labels, never on a record.
    overlay = config.root / ".hotmode" / f"native-{companion.name}.yml"
    published = f"127.0.0.1:{port}:{spec.port or port}"
    labels = {
        companion_record.PROJECT_LABEL: str(config.root),
        companion_record.RUN_LABEL: run_id,
        companion_record.COMPANION_LABEL: companion.name,
    }
    mounted = {
        name: secret_store.container_copy(config.root, selection.mode, selection.edition, name)
        for name in spec.secrets
    }
    write_atomic(
        overlay,
        f"services:\n  {companion.name}:\n    ports: !override\n      - {published}\n"
        "    labels:\n"
        + "".join(f"      {json.dumps(k)}: {json.dumps(v)}\n" for k, v in labels.items())
        + ("secrets:\n" if mounted else "")
        + "".join(
            f"  {json.dumps(n)}:\n    file: {json.dumps(str(p))}\n" for n, p in mounted.items()
        ),
        within=config.root,
    )
    files = [*layout.compose_files(config, selection), overlay]
    project = layout.project_name(config, selection)
    docker.companion_secrets(config, selection)
    names = [volume.real_name(project, selection.edition) for volume in spec.volumes]
    before = _existing(names)
    compose = find_compose()
    try:
        compose.run(
            files,
            project,
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(int(READY_TIMEOUT)),
            companion.name,
            timeout=READY_TIMEOUT + 30,
        )
    except ComposeError as exc:
        remove_containers(config.root)
        raise StateError(f"{companion.name} did not start in Docker: {exc}") from exc
    _check_volumes(config, selection, companion, names, before, say)
    volumes = ", ".join(
        e["name"]
        for e in rendered.volume_names(config, project, selection.mode, selection.edition).values()
    )
    return Entry(
        companion.name, "docker", "running", f"in Docker on {published}, data {volumes}", port
    )


def _existing(volumes: list[str]) -> set[str]:
    """Those of these volumes that the engine has."""
    from hotmode.compose import docker

    listing = docker.docker("volume", "ls", "--format", "{{.Name}}", check=False).stdout.split()
    return set(volumes) & set(listing)


def _check_volumes(
    config: Config,
    selection: Selection,
    companion: Companion,
    volumes: list[str],
    before: set[str],
    say: Callable[[str], None],
) -> None:
    """Say, once, which data volume was made before with another password than the mode's
    generated one (by `hotmode up` in Docker, or an earlier hotmode); remember the others.

    A volume this start found missing was made now, with the mode's secret: hotmode keeps its
    name (the engine's creation time is the folder's and moves, so it proves nothing). The
    database in an older one keeps the password it was initialised with, and the app, given the
    new one, is refused. Nothing is deleted or changed here: the data is the user's."""
    mode, edition = selection.mode, selection.edition
    names = list(companion.spec(mode).secrets)
    if not names:
        return
    secrets = ", ".join(str(secret_store.folder(config.root, mode, edition) / n) for n in names)
    for name in volumes:
        key = f"volume-{name}"
        if name in before and secret_store.recall(config.root, mode, edition, key) is None:
            say(
                f"hotmode: note: {companion.name}: its data volume {name} was made before with "
                f"another password, and keeps it; the app is given {secrets}: set that "
                f"password inside the database to keep its data, or, if the data can go, "
                f"`docker volume rm {name}` and start again"
            )
        secret_store.remember(config.root, mode, edition, key, "made or seen by hotmode")


def remove_containers(root: Path) -> list[str]:
    """Stop and remove the native app's companion containers labelled with this project's folder
    (their data volumes stay); return the companions removed."""
    from hotmode.compose import docker

    if not docker.engine_reachable(timeout=3):
        return []
    listed = docker.docker(
        "ps", "--all", "--quiet", "--no-trunc",
        "--filter", f"label={companion_record.PROJECT_LABEL}={root}",
        "--filter", f"label={companion_record.COMPANION_LABEL}",
    )  # fmt: skip
    ids = listed.stdout.split()
    if not ids:
        return []
    found = json.loads(docker.docker("inspect", *ids).stdout)
    docker.docker("stop", "--time", str(int(STOP_TIMEOUT)), *ids, timeout=STOP_TIMEOUT + 30,
                  check=False)  # fmt: skip
    docker.docker("rm", "--force", "--volumes", *ids)
    names, networks = [], set()
    for container in found:
        labels = container["Config"].get("Labels") or {}
        names.append(labels.get(companion_record.COMPANION_LABEL, "?"))
        networks |= set((container.get("NetworkSettings") or {}).get("Networks") or {})
    # The networks Compose made for them; one still in use is refused by the engine and kept.
    for network in sorted(networks - {"host", "bridge", "none"}):
        docker.docker("network", "rm", network, check=False)
    return names


def engine() -> bool:
    from hotmode.compose import docker

    return docker.engine_reachable(timeout=3)


def container_of(root: Path, name: str) -> str | None:
    """The id of the container running companion `name` for the project at `root`, if any."""
    from hotmode.compose import docker

    listed = docker.docker(
        "ps", "--quiet", "--no-trunc",
        "--filter", f"label={companion_record.PROJECT_LABEL}={root}",
        "--filter", f"label={companion_record.COMPANION_LABEL}={name}",
    )  # fmt: skip
    ids = listed.stdout.split()
    return ids[0] if ids else None
