"""Choosing the mode and the edition: every rung of both ladders, and invalid values at each.

Mode, first wins: --dev/--prod > HOTMODE_MODE > HOT_RELOAD_ENABLED > the same two in the deployment
.env > the declaration's default_mode > prod. Edition: --edition > HOTMODE_EDITION > the declared
edition variable > the same two in .env > the default edition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hotmode.config import Config, load_config
from hotmode.envfile import read_env_file
from hotmode.errors import ConfigError
from hotmode.modes import Selection, all_selections, resolve


@pytest.fixture
def config(gateway: Path) -> Config:
    return load_config(gateway / "hotmode.toml")


def other(value: str, pair: tuple[str, str]) -> str:
    return pair[1] if value == pair[0] else pair[0]


MODES = ("dev", "prod")
EDITIONS = ("core", "saas")
TOGGLE = {"dev": "true", "prod": "false"}
LABEL = {"environ": "the environment", "dotenv": ".env"}

Rung = tuple[str, Callable[[dict[str, Any], str], None], str]


def variable(where: str, name: str, spelling: Mapping[str, str] | None = None) -> Rung:
    """A rung that sets `name` in the environment ("environ") or the deployment .env ("dotenv")."""

    def set_value(c: dict[str, Any], value: str) -> None:
        c[where][name] = (spelling or {}).get(value, value)

    return f"{where} {name}", set_value, f"{name} in {LABEL[where]}"


# Rungs, highest first: (id, how the rung sets a value, the source it must report).
MODE_RUNGS: list[Rung] = [
    ("flag", lambda c, v: c.update(mode=v), "--{}"),
    variable("environ", "HOTMODE_MODE"),
    variable("environ", "HOT_RELOAD_ENABLED", TOGGLE),
    variable("dotenv", "HOTMODE_MODE"),
    variable("dotenv", "HOT_RELOAD_ENABLED", TOGGLE),
    (
        "default_mode",
        lambda c, v: c.update(config=dataclasses.replace(c["config"], default_mode=v)),
        "default_mode in hotmode.toml",
    ),
]
EDITION_RUNGS: list[Rung] = [
    ("flag", lambda c, v: c.update(edition=v), "--edition"),
    variable("environ", "HOTMODE_EDITION"),
    variable("environ", "LG_BACKEND_EDITION"),
    variable("dotenv", "HOTMODE_EDITION"),
    variable("dotenv", "LG_BACKEND_EDITION"),
]


def choice(config: Config) -> dict[str, Any]:
    return {"config": config, "mode": None, "edition": None, "environ": {}, "dotenv": {}}


def run(c: dict[str, Any]) -> Selection:
    return resolve(
        c["config"], mode=c["mode"], edition=c["edition"], environ=c["environ"], dotenv=c["dotenv"]
    )


@pytest.mark.parametrize("winner", MODES)
@pytest.mark.parametrize("rung", range(len(MODE_RUNGS)), ids=[r[0] for r in MODE_RUNGS])
def test_each_mode_rung_beats_every_rung_below_it(config: Config, rung: int, winner: str) -> None:
    c = choice(config)
    _, set_value, source = MODE_RUNGS[rung]
    set_value(c, winner)
    for _, set_lower, _ in MODE_RUNGS[rung + 1 :]:
        set_lower(c, other(winner, MODES))

    selection = run(c)

    assert selection.mode == winner
    assert selection.mode_source == source.format(winner)
    assert selection.dev is (winner == "dev")


def test_with_nothing_set_the_mode_is_prod(config: Config) -> None:
    selection = run(choice(config))
    assert (selection.mode, selection.mode_source) == ("prod", "the built-in default")


@pytest.mark.parametrize("rung", range(1, 5), ids=[r[0] for r in MODE_RUNGS[1:5]])
def test_an_invalid_mode_value_is_an_error_never_a_fallback(config: Config, rung: int) -> None:
    c = choice(config)
    name, set_value, _ = MODE_RUNGS[rung]
    set_value(c, "staging")
    for _, set_lower, _ in MODE_RUNGS[rung + 1 :]:
        set_lower(c, "dev")

    with pytest.raises(ConfigError) as caught:
        run(c)

    message = str(caught.value)
    variable = name.split()[-1]
    assert f"{variable}='staging' is invalid; use " in message
    where = str(config.deployment / ".env") if name.startswith("dotenv") else "environment"
    assert message.startswith(f"{where}: ")


def test_an_invalid_mode_argument_is_an_error(config: Config) -> None:
    c = choice(config)
    c["mode"] = "staging"
    with pytest.raises(ConfigError, match="'staging'"):
        run(c)


@pytest.mark.parametrize(
    ("value", "mode"),
    [(v, "dev") for v in ("1", "true", "True", "yes", "on", " TRUE ")]
    + [(v, "prod") for v in ("0", "false", "FALSE", "no", "off")],
)
def test_hot_reload_enabled_spellings(config: Config, value: str, mode: str) -> None:
    c = choice(config)
    c["environ"]["HOT_RELOAD_ENABLED"] = value
    assert run(c).mode == mode


def test_hotmode_mode_is_case_and_space_insensitive(config: Config) -> None:
    c = choice(config)
    c["environ"]["HOTMODE_MODE"] = " Dev "
    assert run(c).mode == "dev"


def test_an_empty_variable_counts_as_unset(config: Config) -> None:
    c = choice(config)
    c["environ"].update(HOTMODE_MODE="", HOT_RELOAD_ENABLED="true", HOTMODE_EDITION="")
    selection = run(c)
    assert (selection.mode, selection.mode_source) == (
        "dev",
        "HOT_RELOAD_ENABLED in the environment",
    )
    assert selection.edition == "core"


@pytest.mark.parametrize("winner", EDITIONS)
@pytest.mark.parametrize("rung", range(len(EDITION_RUNGS)), ids=[r[0] for r in EDITION_RUNGS])
def test_each_edition_rung_beats_every_rung_below_it(
    config: Config, rung: int, winner: str
) -> None:
    c = choice(config)
    _, set_value, source = EDITION_RUNGS[rung]
    set_value(c, winner)
    for _, set_lower, _ in EDITION_RUNGS[rung + 1 :]:
        set_lower(c, other(winner, EDITIONS))

    selection = run(c)

    assert (selection.edition, selection.edition_source) == (winner, source)


def test_with_nothing_set_the_edition_is_the_declared_default(config: Config) -> None:
    selection = run(choice(config))
    assert selection.edition == "core"
    assert selection.edition_source == "the default edition of hotmode.toml"
    assert selection.label == "prod core"


@pytest.mark.parametrize("rung", range(len(EDITION_RUNGS)), ids=[r[0] for r in EDITION_RUNGS])
def test_an_undeclared_edition_is_an_error_never_a_fallback(config: Config, rung: int) -> None:
    c = choice(config)
    _, set_value, source = EDITION_RUNGS[rung]
    set_value(c, "enterprise")
    for _, set_lower, _ in EDITION_RUNGS[rung + 1 :]:
        set_lower(c, "saas")

    with pytest.raises(ConfigError) as caught:
        run(c)

    assert str(caught.value) == (
        f"edition 'enterprise' (from {source}) is not declared in {config.path}; "
        "use one of: core, saas"
    )


def test_the_deployment_env_file_is_read_when_no_dotenv_is_given(config: Config) -> None:
    (config.deployment / ".env").write_text(
        "# local settings\nexport HOT_RELOAD_ENABLED=true\nLG_BACKEND_EDITION='saas'\n"
    )
    selection = resolve(config, environ={})
    assert (selection.mode, selection.mode_source) == ("dev", "HOT_RELOAD_ENABLED in .env")
    assert (selection.edition, selection.edition_source) == ("saas", "LG_BACKEND_EDITION in .env")


def test_read_env_file_understands_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "\n".join(
            [
                "# a comment",
                "",
                "PLAIN=value",
                "export EXPORTED=1",
                "SPACED = padded  ",
                'DOUBLE="with # hash"',
                "SINGLE='x y'",
                "TRAILING=value # comment",
                "EMPTY=",
            ]
        )
    )
    assert read_env_file(path) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "SPACED": "padded",
        "DOUBLE": "with # hash",
        "SINGLE": "x y",
        "TRAILING": "value",
        "EMPTY": "",
    }
    assert read_env_file(tmp_path / "missing.env") == {}


@pytest.mark.parametrize(
    "line", ["JUST_A_WORD", "TWO WORDS=1", "=value", "BAD-NAME=1", "1ST=x", "ÉTÉ=1"]
)
def test_a_malformed_env_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"GOOD=1\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert str(caught.value) == f"{path}:2: expected NAME=value, got {line!r}"


def test_all_selections_is_every_mode_by_edition_prod_and_default_first(config: Config) -> None:
    assert [s.label for s in all_selections(config)] == [
        "prod core",
        "prod saas",
        "dev core",
        "dev saas",
    ]
