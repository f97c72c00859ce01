"""The `hotmode` command line as a user runs it: a real `python -m hotmode` process.

Every bad input must end with exit code 2 and one line on stderr that names the file, key or
variable and what to do; no traceback; and not a single file written or touched.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import RunCli, Snapshot, cli_environment, copy_gateway
from hotmode.cli import COMMANDS
from hotmode.compose.engine import find_compose
from hotmode.compose.render import render_files, write_files
from hotmode.config import load_config

BASE = "docker-compose.yml"
SAAS = "docker-compose.saas.yml"
DEV = "docker-compose.dev.yml"
DEV_SAAS = "docker-compose.dev-saas.yml"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def move_to_pyproject(gateway: Path, old: str = "", new: str = "") -> None:
    """Turn the gateway's hotmode.toml into [tool.hotmode] of a pyproject.toml."""
    declaration = gateway / "hotmode.toml"
    body = declaration.read_text().replace(old, new)
    for table in ("[editions.", "[dev]"):
        body = body.replace(table, f"[tool.hotmode.{table[1:]}")
    (gateway / "pyproject.toml").write_text(f"[tool.hotmode]\n{body}")
    declaration.unlink()


def test_help_lists_every_command(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, err = run_cli("--help", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert "Usage: hotmode" in out
    for name, (_, _, summary) in COMMANDS.items():
        assert f"  {name} " in out, name
        assert summary[:30] in out


def test_version_and_an_unknown_command(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, _ = run_cli("--version", cwd=tmp_path)
    assert code == 0 and out.startswith("hotmode, version ")
    code, _, err = run_cli("no-such-command", cwd=tmp_path)
    assert code == 2
    assert "No such command" in err


def test_files_prints_the_f_list_of_each_mode(gateway: Path, run_cli: RunCli) -> None:
    deployment = gateway / "deployment"

    def f_list(*names: str) -> str:
        return " ".join(f"-f {deployment / name}" for name in names) + "\n"

    assert run_cli("files", cwd=gateway) == (0, f_list(BASE), "")
    assert run_cli("files", "--edition", "saas", cwd=gateway)[1] == f_list(BASE, SAAS)
    assert run_cli("files", "--dev", cwd=gateway)[1] == f_list(BASE, DEV)
    assert run_cli("files", "--dev", "--edition", "saas", cwd=gateway)[1] == f_list(
        BASE, SAAS, DEV, DEV_SAAS
    )
    # A local overlay, when present, comes last; then --overlay files.
    (deployment / "docker-compose.local.yml").write_text("services: {}\n")
    extra = gateway / "extra.yml"
    extra.write_text("services: {}\n")
    code, out, _ = run_cli("files", "--prod", "--overlay", "extra.yml", cwd=gateway)
    assert code == 0
    assert out == f_list(BASE, "docker-compose.local.yml").rstrip("\n") + f" -f {extra}\n"


def eval_hotmode(
    folder: Path, *args: str, then: str, before: str = "", env: dict[str, str] | None = None
) -> str:
    """Run `eval "BEFORE$(hotmode ARGS)" && THEN` in bash and return its stdout."""
    hotmode = shlex.join([sys.executable, "-m", "hotmode", *args])
    result = subprocess.run(
        ["bash", "-c", f'eval "{before}$({hotmode})" && {then}'],
        cwd=folder,
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_env_is_eval_able_even_with_spaces_in_the_path(tmp_path: Path) -> None:
    gateway = copy_gateway(tmp_path / "my projects" / "linkedin-gateway")
    deployment = gateway / "deployment"

    out = eval_hotmode(
        gateway,
        "env",
        "--dev",
        "--edition",
        "saas",
        then='echo "$COMPOSE_FILE"; echo "$COMPOSE_PROJECT_NAME"',
    )

    assert out.splitlines() == [
        ":".join(str(deployment / name) for name in (BASE, SAAS, DEV, DEV_SAAS)),
        "linkedin-gateway-dev-saas",
    ]
    # `files` quotes each path, so that `eval "docker compose $(hotmode files) ..."` works too.
    out = eval_hotmode(
        gateway, "files", "--edition", "saas", before="set -- ", then='printf "%s\\n" "$@"'
    )
    assert out.splitlines() == ["-f", str(deployment / BASE), "-f", str(deployment / SAAS)]


def test_env_gives_plain_compose_the_same_configuration_as_hotmode(
    gateway: Path, run_cli: RunCli
) -> None:
    compose = shlex.join(find_compose().argv)
    toggle = {"HOT_RELOAD_ENABLED": "1", "LG_BACKEND_EDITION": "saas"}

    plain = eval_hotmode(gateway, "env", then=f"{compose} config", env=toggle)
    code, through_hotmode, _ = run_cli("config", cwd=gateway, env=toggle)

    assert code == 0
    assert yaml.safe_load(plain) == yaml.safe_load(through_hotmode)
    assert yaml.safe_load(plain)["name"] == "linkedin-gateway-dev-saas"


IN_ENV = "%s in the environment"


@pytest.mark.parametrize(
    ("env", "dotenv", "args", "expected"),
    [
        ({}, "", (), "# prod core: mode from the built-in default"),
        (
            {"HOT_RELOAD_ENABLED": "true"},
            "",
            (),
            f"# dev core: mode from {IN_ENV % 'HOT_RELOAD_ENABLED'}",
        ),
        ({}, "HOTMODE_MODE=dev\n", (), "# dev core: mode from HOTMODE_MODE in .env"),
        (
            {"HOTMODE_MODE": "prod"},
            "HOTMODE_MODE=dev\n",
            (),
            f"# prod core: mode from {IN_ENV % 'HOTMODE_MODE'}",
        ),
        ({"HOTMODE_MODE": "prod"}, "", ("--dev",), "# dev core: mode from --dev"),
        ({"LG_BACKEND_EDITION": "saas"}, "", (), "# prod saas: mode from the built-in default"),
    ],
)
def test_env_reports_the_mode_and_the_source_that_chose_it(
    gateway: Path,
    run_cli: RunCli,
    env: dict[str, str],
    dotenv: str,
    args: tuple[str, ...],
    expected: str,
) -> None:
    if dotenv:
        (gateway / "deployment" / ".env").write_text(dotenv)
    code, out, err = run_cli("env", *args, cwd=gateway, env=env)
    assert code == 0
    assert err == expected + "\n"
    project = "linkedin-gateway" + ("-dev" if " dev " in expected else "")
    project += "-saas" if "saas" in expected else ""
    assert f"export COMPOSE_PROJECT_NAME={project}\n" in out


def test_config_prints_the_yaml_compose_produced(gateway: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("config", "--dev", "--edition", "saas", cwd=gateway)

    assert (code, err) == (0, "")
    document = yaml.safe_load(out)
    config = load_config(gateway / "hotmode.toml")
    files = [config.deployment / name for name in (BASE, SAAS, DEV, DEV_SAAS)]
    direct = find_compose().config_dict(files, "linkedin-gateway-dev-saas")
    assert document["name"] == direct["name"] == "linkedin-gateway-dev-saas"
    service, expected = document["services"]["backend"], direct["services"]["backend"]
    for key in ("command", "environment", "volumes", "image", "build", "user", "ports"):
        assert service[key] == expected[key], key
    assert service["environment"]["LG_BACKEND_EDITION"] == "saas"


def test_config_applies_an_overlay_last(gateway: Path, run_cli: RunCli) -> None:
    (gateway / "extra.yml").write_text(
        "services:\n  backend:\n    environment:\n      EXTRA: '1'\n"
    )
    code, out, _ = run_cli("config", "--overlay", "extra.yml", cwd=gateway)
    assert code == 0
    assert yaml.safe_load(out)["services"]["backend"]["environment"]["EXTRA"] == "1"


def test_a_tool_hotmode_table_in_pyproject_drives_the_cli(gateway: Path, run_cli: RunCli) -> None:
    move_to_pyproject(gateway)

    code, out, err = run_cli("files", "--dev", "--edition", "saas", cwd=gateway / "backend")

    assert (code, err) == (0, "")
    assert out.split() == [
        part
        for name in (BASE, SAAS, DEV, DEV_SAAS)
        for part in ("-f", str(gateway / "deployment" / name))
    ]


# Bad inputs: (how to spoil the gateway, the command, its environment, what the one line says).
Spoil = Callable[[Path], None]


def nothing(gateway: Path) -> None:
    return None


def in_declaration(old: str, new: str) -> Spoil:
    return lambda gateway: replace_in(gateway / "hotmode.toml", old, new)


def dotenv(text: str) -> Spoil:
    return lambda gateway: (gateway / "deployment" / ".env").write_text(text)


def as_pyproject(old: str, new: str) -> Spoil:
    return lambda gateway: move_to_pyproject(gateway, old, new)


def non_executable(gateway: Path) -> None:
    (gateway / "compose-binary").write_text("#!/bin/sh\n")


def broken_compose_file(gateway: Path) -> None:
    (gateway / "deployment" / BASE).write_text("services: [\n")


PORT = "port = 7778"
BAD_INPUTS: dict[str, tuple[Spoil, tuple[str, ...], dict[str, str], str]] = {
    "unknown key": (
        in_declaration(PORT, f"{PORT}\ncolour = 'red'"),
        ("render",),
        {},
        "hotmode.toml:6: colour: unknown key; allowed here: base_image, ",
    ),
    "wrong type": (
        in_declaration('target = "main:app"', "target = 5"),
        ("render",),
        {},
        "hotmode.toml:4: target: expected a string, got int",
    ),
    "missing source folder": (
        in_declaration('source = "backend"', 'source = "src"'),
        ("render",),
        {},
        "hotmode.toml:3: source: folder ",
    ),
    **{
        f"port {value}": (
            in_declaration(PORT, f"port = {value}"),
            ("render",),
            {},
            f"hotmode.toml:5: port: {shown} is not a TCP port; use an integer 1-65535",
        )
        for value, shown in (("0", "0"), ("70000", "70000"), ('"x"', "'x'"), ("true", "True"))
    },
    "malformed TOML": (
        in_declaration(PORT, "port = "),
        ("render",),
        {},
        "hotmode.toml: malformed TOML: Invalid value (at line 5, column 8)",
    ),
    "bad default_mode": (
        in_declaration(PORT, f'{PORT}\ndefault_mode = "staging"'),
        ("files",),
        {},
        "hotmode.toml:6: default_mode: 'staging'; allowed: dev, prod",
    ),
    "a line break in an unknown key": (
        in_declaration(PORT, f'{PORT}\n"two\\nlines" = 1'),
        ("render",),
        {},
        ": unknown key; allowed here: ",
    ),
    "error in tool.hotmode": (
        as_pyproject(PORT, "port = 0"),
        ("render",),
        {},
        "pyproject.toml:6: tool.hotmode.port: 0 is not a TCP port",
    ),
    "undeclared edition flag": (
        nothing,
        ("files", "--edition", "enterprise"),
        {},
        "edition 'enterprise' (from --edition) is not declared in ",
    ),
    "undeclared edition variable": (
        nothing,
        ("files",),
        {"HOTMODE_EDITION": "enterprise"},
        "edition 'enterprise' (from HOTMODE_EDITION in the environment) is not declared in ",
    ),
    "undeclared edition in .env": (
        dotenv("LG_BACKEND_EDITION=enterprise\n"),
        ("files",),
        {},
        "edition 'enterprise' (from LG_BACKEND_EDITION in .env) is not declared in ",
    ),
    "bad HOTMODE_MODE": (
        nothing,
        ("files",),
        {"HOTMODE_MODE": "staging"},
        "environment: HOTMODE_MODE='staging' is invalid; use 'dev' or 'prod'",
    ),
    "bad HOT_RELOAD_ENABLED": (
        nothing,
        ("files",),
        {"HOT_RELOAD_ENABLED": "maybe"},
        "environment: HOT_RELOAD_ENABLED='maybe' is invalid; use 'true' (dev) or 'false' (prod)",
    ),
    "bad HOTMODE_MODE in .env": (
        dotenv("HOTMODE_MODE=fast\n"),
        ("env",),
        {},
        "deployment/.env: HOTMODE_MODE='fast' is invalid; use 'dev' or 'prod'",
    ),
    "malformed .env line": (
        dotenv("PORT=7778\nthis is not a variable\n"),
        ("files",),
        {},
        "deployment/.env:2: expected NAME=value, got 'this is not a variable'",
    ),
    "HOTMODE_COMPOSE pointing at nothing": (
        nothing,
        ("config",),
        {"HOTMODE_COMPOSE": "/nonexistent/docker-compose"},
        "HOTMODE_COMPOSE='/nonexistent/docker-compose' is not an executable; fix or unset it",
    ),
    "HOTMODE_COMPOSE not executable": (
        non_executable,
        ("config",),
        {"HOTMODE_COMPOSE": "./compose-binary"},
        "HOTMODE_COMPOSE='./compose-binary' is not an executable; fix or unset it",
    ),
    "a compose file Compose rejects": (
        broken_compose_file,
        ("config",),
        {},
        "Compose rejected docker-compose.yml: ",
    ),
    "--dev and --prod together": (
        nothing,
        ("files", "--dev", "--prod"),
        {},
        "--dev and --prod exclude each other; give one; see `hotmode files --help`",
    ),
    "an out-of-range --port": (
        nothing,
        ("up", "--native", "--port", "0"),
        {},
        "Invalid value for '--port': 0 is not in the range 1<=x<=65535; see `hotmode up --help`",
    ),
    "run with an env file that does not exist": (
        nothing,
        ("run", "main:app", "--app-dir", "backend", "--env-file", "missing.env"),
        {},
        "Invalid value for '--env-file': File 'missing.env' does not exist",
    ),
    "--config naming no file": (
        nothing,
        ("render", "--config", "missing.toml"),
        {},
        "missing.toml: cannot read the declaration",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_touches_nothing(
    gateway: Path, run_cli: RunCli, snapshot: Callable[[Path], Snapshot], case: str
) -> None:
    spoil, args, env, expected = BAD_INPUTS[case]
    spoil(gateway)
    before = snapshot(gateway)

    code, out, err = run_cli(*args, cwd=gateway, env=env)

    assert code == 2, err
    assert out == ""
    assert err.startswith("hotmode: error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert expected in err, err
    assert snapshot(gateway) == before


def test_no_declaration_found_exits_2_and_says_what_to_do(
    tmp_path: Path, run_cli: RunCli, snapshot: Callable[[Path], Snapshot]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'unrelated'\n")
    before = snapshot(tmp_path)

    code, out, err = run_cli("render", cwd=tmp_path)

    assert (code, out) == (2, "")
    assert err == (
        f"hotmode: error: no hotmode.toml (or [tool.hotmode] in pyproject.toml) in {tmp_path} "
        "or above; create one, or pass --config FILE\n"
    )
    assert snapshot(tmp_path) == before


def test_a_mode_command_before_render_says_what_is_missing(gateway: Path, run_cli: RunCli) -> None:
    config = load_config(gateway / "hotmode.toml")
    for path in render_files(config):
        path.unlink()

    code, _, err = run_cli("config", cwd=gateway)

    assert code == 2
    assert err.count("\n") == 1
    assert "docker-compose.yml" in err
    write_files(render_files(config))
    assert run_cli("config", cwd=gateway)[0] == 0


def test_hotmode_compose_may_name_a_binary_relative_to_where_hotmode_runs(
    gateway: Path, run_cli: RunCli
) -> None:
    (gateway / "bin").mkdir()
    (gateway / "bin" / "compose").symlink_to(find_compose().argv[0])

    code, out, err = run_cli("config", cwd=gateway, env={"HOTMODE_COMPOSE": "./bin/compose"})

    assert (code, err) == (0, "")
    assert yaml.safe_load(out)["name"] == "linkedin-gateway"
