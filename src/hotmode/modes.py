"""Choosing the mode and the edition, and saying which source decided.

Precedence, first wins: CLI flag > `HOTMODE_MODE` > `HOT_RELOAD_ENABLED` > the same two variables in
the deployment `.env` > the declaration's `default_mode` > prod. The edition follows the same
ladder with `HOTMODE_EDITION` and then the declared edition variable. A value that is set but
invalid is an error, never a reason to try the next rung.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hotmode.config import MODES, Config
from hotmode.envfile import read_env_file
from hotmode.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Selection:
    """A mode x edition, and where each half of the choice came from."""

    mode: str
    edition: str
    mode_source: str
    edition_source: str

    @property
    def dev(self) -> bool:
        return self.mode == "dev"

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"


def _mode_from(name: str, value: str, where: str) -> str:
    lowered = value.strip().lower()
    if name == "HOTMODE_MODE":
        if lowered in MODES:
            return lowered
        raise ConfigError(f"{where}: HOTMODE_MODE={value!r} is invalid; use 'dev' or 'prod'")
    if lowered in _TRUE:
        return "dev"
    if lowered in _FALSE:
        return "prod"
    raise ConfigError(f"{where}: {name}={value!r} is invalid; use 'true' (dev) or 'false' (prod)")


def resolve(
    config: Config,
    *,
    mode: str | None = None,
    edition: str | None = None,
    environ: Mapping[str, str],
    dotenv: Mapping[str, str] | None = None,
) -> Selection:
    """Decide the mode and the edition from flags, environment, `.env` and the declaration."""
    if mode is not None and mode not in MODES:
        raise ConfigError(f"mode {mode!r} is invalid; use 'dev' or 'prod'")
    if dotenv is None:
        dotenv = read_env_file(config.deployment / ".env")
    env_where = f"{config.deployment / '.env'}"
    mode_choice: tuple[str, str] | None = (mode, "--" + mode) if mode else None
    for source, where in ((environ, "environment"), (dotenv, env_where)):
        if mode_choice:
            break
        for name in ("HOTMODE_MODE", "HOT_RELOAD_ENABLED"):
            value = source.get(name)
            if value:
                label = f"{name} in {'the environment' if source is environ else '.env'}"
                mode_choice = (_mode_from(name, value, where), label)
                break
    if mode_choice is None:
        if config.default_mode:
            mode_choice = (config.default_mode, f"default_mode in {config.path.name}")
        else:
            mode_choice = ("prod", "the built-in default")

    edition_choice: tuple[str, str] | None = (edition, "--edition") if edition else None
    for source in (environ, dotenv):
        if edition_choice:
            break
        for name in ("HOTMODE_EDITION", config.edition_variable):
            value = source.get(name)
            if value:
                label = f"{name} in {'the environment' if source is environ else '.env'}"
                edition_choice = (value.strip(), label)
                break
    if edition_choice is None:
        edition_choice = (config.default_edition.name, f"the default edition of {config.path.name}")
    try:
        config.edition(edition_choice[0])
    except ConfigError:
        allowed = ", ".join(e.name for e in config.editions)
        raise ConfigError(
            f"edition {edition_choice[0]!r} (from {edition_choice[1]}) is not declared in "
            f"{config.path}; use one of: {allowed}"
        ) from None
    return Selection(mode_choice[0], edition_choice[0], mode_choice[1], edition_choice[1])


def all_selections(config: Config) -> list[Selection]:
    """Every mode x edition, prod first, default edition first."""
    return [
        Selection(mode, e.name, "--all", "--all")
        for mode in ("prod", "dev")
        for e in config.editions
    ]
