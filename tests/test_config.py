"""The declaration: what a good one loads into, and how every bad one is reported."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from hotmode.config import find_declaration, load_config
from hotmode.errors import ConfigError

MINIMAL = """\
name = "app"
source = "src"
"""


def declare(folder: Path, text: str, *, filename: str = "hotmode.toml") -> Path:
    """Write a declaration (and its `src` source folder) into `folder`."""
    (folder / "src").mkdir(exist_ok=True)
    path = folder / filename
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_gateway_declaration_loads_into_one_frozen_config(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")

    assert config.path == gateway / "hotmode.toml"
    assert config.name == "linkedin-gateway"
    assert config.source == gateway / "backend"
    assert config.target == "main:app"
    assert config.port == 7778
    assert config.requirements == "requirements/base.txt"
    assert config.edition_variable == "LG_BACKEND_EDITION"
    assert config.deployment == gateway / "deployment"
    assert [e.name for e in config.editions] == ["core", "saas"]
    assert config.default_edition.name == "core"
    assert config.edition("saas").env_file == ".env.prod.saas"
    assert config.edition("core").env_file is None
    assert config.edition("saas").env == {"LG_BACKEND_EDITION": "saas"}
    assert config.edition("core").env == {"LG_BACKEND_EDITION": "core"}
    assert config.dev.env == {"DEBUG": "true", "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    assert config.dev.log_level == "debug"
    assert config.default_mode is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_a_minimal_declaration_gets_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(declare(tmp_path, MINIMAL))

    assert config.port == 7778
    assert config.target == "main:app"
    assert config.requirements == "requirements.txt"
    assert config.deployment == tmp_path / "deployment"
    assert config.service == "backend"
    assert config.default_mode is None
    assert [(e.name, e.default) for e in config.editions] == [("default", True)]
    assert config.dev.env == {"DEBUG": "true", "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    assert config.install_command == "python -m pip install -r requirements.txt"


def test_dev_defaults_false_leaves_out_hotmodes_guesses_and_keeps_the_apps_own(
    tmp_path: Path,
) -> None:
    """An app whose settings take LOG_LEVEL as a lower-case enum dies on LOG_LEVEL=DEBUG:
    `defaults = false` gives dev only its declared variables (and unbuffered output)."""
    config = load_config(
        declare(tmp_path, MINIMAL + '[dev]\ndefaults = false\nenv = { DB_ECHO = "true" }\n')
    )
    assert config.dev.env == {"PYTHONUNBUFFERED": "1", "DB_ECHO": "true"}
    with pytest.raises(ConfigError, match=r"dev.defaults: 'no' is not true or false"):
        load_config(declare(tmp_path, MINIMAL + '[dev]\ndefaults = "no"\n'))


def test_the_default_edition_comes_first_and_a_lone_edition_is_the_default(tmp_path: Path) -> None:
    several = load_config(
        declare(
            tmp_path,
            MINIMAL
            + """
            [editions.saas]
            [editions.enterprise]
            [editions.core]
            default = true
            """,
        )
    )
    assert [e.name for e in several.editions] == ["core", "saas", "enterprise"]

    lone = load_config(declare(tmp_path, MINIMAL + "[editions.solo]\n"))
    assert [(e.name, e.default) for e in lone.editions] == [("solo", True)]


def test_dev_env_extends_the_built_in_dev_env(tmp_path: Path) -> None:
    config = load_config(
        declare(tmp_path, MINIMAL + '[dev]\nenv = { FEATURE = "on", DEBUG = false }\n')
    )
    assert config.dev.env == {
        "DEBUG": "false",
        "LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
        "FEATURE": "on",
    }


def test_tool_hotmode_in_pyproject_is_a_declaration(tmp_path: Path) -> None:
    path = declare(
        tmp_path,
        """\
        [project]
        name = "something-else"

        [tool.hotmode]
        name = "app"
        source = "src"
        port = 8001

        [tool.hotmode.editions.core]
        default = true
        """,
        filename="pyproject.toml",
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir()

    assert find_declaration(nested) == path
    config = load_config(path)
    assert (config.name, config.port, config.source) == ("app", 8001, tmp_path / "src")
    assert config.default_edition.name == "core"


def test_a_pyproject_error_names_the_tool_hotmode_key_and_its_line(tmp_path: Path) -> None:
    path = declare(
        tmp_path,
        """\
        [project]
        name = "x"
        port = 1

        [tool.hotmode]
        name = "app"
        source = "src"
        port = 0
        """,
        filename="pyproject.toml",
    )
    assert load_error(path).startswith(f"{path}:8: tool.hotmode.port: 0 is not a TCP port")


def test_find_declaration_walks_upwards_and_prefers_hotmode_toml(tmp_path: Path) -> None:
    declaration = declare(tmp_path, MINIMAL)
    (tmp_path / "pyproject.toml").write_text("[tool.hotmode]\nname = 'other'\n")
    (tmp_path / "src" / "deep").mkdir()
    # A pyproject.toml without [tool.hotmode] on the way up is not a declaration.
    (tmp_path / "src" / "pyproject.toml").write_text("[project]\nname = 'lib'\n")

    assert find_declaration(tmp_path / "src" / "deep") == declaration


def test_no_declaration_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"no hotmode.toml .* in .*; create one, or pass --config"
    ):
        find_declaration(tmp_path)


def test_an_undeclared_edition_lists_the_declared_ones(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")
    with pytest.raises(
        ConfigError, match=r"edition 'enterprise' is not declared; use one of: core, saas"
    ):
        config.edition("enterprise")


# (declaration, line, the message after "FILE:LINE: ") for every kind of mistake.
BAD_DECLARATIONS = {
    "unknown key": (MINIMAL + 'colour = "red"\n', 3, "colour: unknown key; allowed here: "),
    "unknown edition key": (
        MINIMAL + "[editions.core]\ndefualt = true\n",
        4,
        "editions.core.defualt: unknown key; allowed here: default, env, env_file",
    ),
    "unknown dev key": (MINIMAL + "[dev]\nreload = true\n", 4, "dev.reload: unknown key"),
    "name missing": ('source = "src"\n', None, "name: required"),
    "name of the wrong type": ('name = 3\nsource = "src"\n', 1, "name: expected a string, got int"),
    "name not lower-case": ('name = "App"\nsource = "src"\n', 1, "name: required; two or more"),
    "name of one character": ('name = "a"\nsource = "src"\n', 1, "name: required; two or more"),
    "memory without a number": (
        MINIMAL + 'memory = "lots"\n',
        3,
        "memory: 'lots' is not the container's memory limit, e.g. '512M' or '1G'",
    ),
    "cpus zero": (MINIMAL + "cpus = 0\n", 3, "cpus: '0' is not the container's CPU limit"),
    "target of the wrong type": (MINIMAL + "target = 5\n", 3, "target: expected a string, got int"),
    "target without an attribute": (MINIMAL + 'target = "main"\n', 3, "target: 'main' is not"),
    "port 0": (MINIMAL + "port = 0\n", 3, "port: 0 is not a TCP port; use an integer 1-65535"),
    "port 70000": (MINIMAL + "port = 70000\n", 3, "port: 70000 is not a TCP port; use an integer"),
    "port a string": (MINIMAL + 'port = "x"\n', 3, "port: 'x' is not a TCP port; use an integer"),
    "port a boolean": (
        MINIMAL + "port = true\n",
        3,
        "port: True is not a TCP port; use an integer",
    ),
    "port a float": (MINIMAL + "port = 80.5\n", 3, "port: 80.5 is not a TCP port"),
    "missing source folder": (
        'name = "app"\nsource = "nowhere"\n',
        2,
        "source: folder ",  # ... /nowhere does not exist; create it or fix the path
    ),
    "edition variable not a variable": (
        MINIMAL + 'edition_variable = "1-EDITION"\n',
        3,
        "edition_variable: '1-EDITION' is not an environment variable",
    ),
    "editions not a table": (MINIMAL + "editions = 3\n", 3, "editions: expected at least one"),
    "edition named like a mode": (
        MINIMAL + "[editions.dev]\n",
        3,
        "editions.dev: edition names are lower-case and not 'dev', 'prod', 'local'",
    ),
    "two default editions": (
        MINIMAL + "[editions.a]\ndefault = true\n[editions.b]\ndefault = true\n",
        3,
        "editions: only one edition may be default",
    ),
    "no default edition": (
        MINIMAL + "[editions.a]\n[editions.b]\n",
        3,
        "editions: mark one edition with default = true",
    ),
    "edition default not a boolean": (
        MINIMAL + '[editions.a]\ndefault = "yes"\n',
        4,
        "editions.a.default: expected true or false",
    ),
    "edition env value of the wrong type": (
        MINIMAL + "[editions.a]\nenv = { X = [1] }\n",
        4,
        "editions.a.env.X: expected a string, got list",
    ),
    "edition env_file of the wrong type": (
        MINIMAL + "[editions.a]\nenv_file = 1\n",
        4,
        "editions.a.env_file: expected a string, got int",
    ),
    "dev not a table": (MINIMAL + "dev = 1\n", 3, "dev: expected a table with env, log_level"),
    "dev log level unknown": (
        MINIMAL + '[dev]\nlog_level = "loud"\n',
        4,
        "dev.log_level: 'loud'; allowed: critical, error, warning, info, debug, trace",
    ),
    "default mode unknown": (
        MINIMAL + 'default_mode = "staging"\n',
        3,
        "default_mode: 'staging'; allowed: dev, prod",
    ),
    "globs not a list": (MINIMAL + 'watch_ignore = "*.tmp"\n', 3, "watch_ignore: expected a list"),
}


@pytest.mark.parametrize("case", list(BAD_DECLARATIONS))
def test_a_bad_declaration_names_file_line_key_and_what_is_allowed(
    tmp_path: Path, case: str
) -> None:
    text, line, expected = BAD_DECLARATIONS[case]
    path = declare(tmp_path, text)

    message = load_error(path)

    where = f"{path}:{line}" if line else f"{path}"
    assert message.startswith(f"{where}: {expected}"), message


def test_the_line_points_into_the_table_that_holds_the_bad_key(tmp_path: Path) -> None:
    path = declare(
        tmp_path,
        MINIMAL
        + """\
        [editions.core]
        default = true
        env_file = ".env.core"

        [editions.saas]
        env_file = 7
        """,
    )
    assert load_error(path).startswith(f"{path}:8: editions.saas.env_file: expected a string")


def test_a_malformed_toml_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = declare(tmp_path, 'name = "app"\nsource = "src"\nport = \n')

    message = load_error(path)

    assert message.startswith(f"{path}: malformed TOML: ")
    assert "line 3" in message


def test_an_unreadable_declaration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the declaration"):
        load_config(tmp_path / "missing.toml")


def test_a_pyproject_without_tool_hotmode_is_refused_when_named(tmp_path: Path) -> None:
    path = declare(tmp_path, "[project]\nname = 'x'\n", filename="pyproject.toml")
    assert "no [tool.hotmode] table" in load_error(path)
