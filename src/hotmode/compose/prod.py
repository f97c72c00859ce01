"""The prod mode's merged configuration, per edition: what the Swarm and Kubernetes renderers read.

Compose merges and validates the prod file set of an edition. Two environments: the default
ignores the shell, the deployment `.env` and the site's local overlay, so that manifests depend
on the declaration alone; `site` resolves variables from the deployment `.env` and the shell
and adds the local overlay, as `docker compose` would, because `docker stack deploy` reads no
`.env`. Env files stay references: Compose 2.40 prints neither the `env_file:` key nor (with
`--no-env-resolution`, YAML output) their values, so the references are read from the files
themselves, `!override` and `!reset` honoured.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotmode.compose import layout
from hotmode.compose.engine import find_compose
from hotmode.config import Config
from hotmode.errors import ComposeError
from hotmode.modes import Selection

# What a scrubbed Compose run still needs from the shell: finding binaries and a home.
_KEPT = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")


@dataclass(frozen=True)
class EnvFile:
    """An `env_file:` reference, relative to the deployment folder."""

    path: str
    required: bool


@dataclass(frozen=True)
class ProdConfig:
    """One edition's prod configuration, merged by Compose, with its env file references."""

    edition: str
    project: str
    files: tuple[Path, ...]
    merged: Mapping[str, Any]
    env_files: Mapping[str, tuple[EnvFile, ...]]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services = self.merged.get("services") or {}
        return {str(name): service for name, service in services.items()}


def prod_files(config: Config, edition: str) -> list[Path]:
    """The prod `-f` list of an edition without the site's local overlay."""
    selection = Selection("prod", edition, "render", "render")
    files = layout.compose_files(config, selection)
    return [path for path in files if path.name != layout.LOCAL]


def merge(
    config: Config,
    edition: str,
    *,
    site: bool = False,
    env: Mapping[str, str] | None = None,
    extra_files: tuple[Path, ...] = (),
) -> ProdConfig:
    """Merge an edition's prod files with Compose; `site` resolves the deployment `.env` too."""
    files = [*prod_files(config, edition), *extra_files]
    local = config.deployment / layout.LOCAL
    if site and local.is_file():
        # The site's own overlay (e.g. host networking on a single host) is the site's to keep.
        files.append(local)
    for path in files:
        if not path.is_file():
            raise ComposeError(f"{path} does not exist; run `hotmode render` first")
    project = layout.project_name(config, Selection("prod", edition, "render", "render"))
    if site:
        environment = dict(os.environ)
        args: list[str] = []
    else:
        environment = {name: os.environ[name] for name in _KEPT if name in os.environ}
        # An empty env file in place of the deployment .env: the declaration alone decides.
        args = ["--env-file", os.devnull]
    environment.update(env or {})
    argv = find_compose().command(files, project, *args, "config", "--no-env-resolution")
    try:
        result = subprocess.run(  # noqa: S603 - argv built from our own parts
            argv,
            capture_output=True,
            text=True,
            env=environment,
            cwd=files[0].parent,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComposeError(f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        names = ", ".join(path.name for path in files)
        raise ComposeError(f"Compose rejected {names}: {lines[-1] if lines else 'no message'}")
    merged = yaml.safe_load(result.stdout)
    if not isinstance(merged, dict):
        raise ComposeError(f"Compose gave no configuration for prod {edition}")
    services = merged.get("services") or {}
    references = {name: env_file_references(files, name) for name in services}
    return ProdConfig(edition, project, tuple(files), merged, references)


class _Tagged(list[Any]):
    def __init__(self, tag: str, items: list[Any]) -> None:
        super().__init__(items)
        self.tag = tag


class _Loader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return _Tagged(suffix, loader.construct_sequence(node, deep=True))
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return _Tagged(suffix, [])


_Loader.add_multi_constructor("!", _tagged)


def env_file_references(files: list[Path], service: str) -> tuple[EnvFile, ...]:
    """The `env_file:` entries of a service as Compose merges them across `files`."""
    found: list[EnvFile] = []
    for path in files:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
        services = document.get("services") if isinstance(document, dict) else None
        entry = services.get(service) if isinstance(services, dict) else None
        if not isinstance(entry, dict) or "env_file" not in entry:
            continue
        value = entry["env_file"]
        if isinstance(value, _Tagged) and value.tag in ("override", "reset"):
            found = []
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                found.append(EnvFile(item, True))
            elif isinstance(item, dict) and "path" in item:
                found.append(EnvFile(str(item["path"]), bool(item.get("required", True))))
    return tuple(found)
