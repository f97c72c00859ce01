"""Every mode x edition as the real Compose binary merges it (`config --format json`).

The rendered files are only text; what runs is what Compose makes of the `-f` list. So the promises
of each mode are checked on Compose's own output: prod bakes the source and locks the container
down, dev mounts the source and reloads, and no two combinations share a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from conftest import copy_gateway, make_pyproject_app
from hotmode.compose import layout
from hotmode.compose.engine import find_compose
from hotmode.compose.render import render_files, write_files
from hotmode.config import Config, load_config
from hotmode.errors import ComposeError
from hotmode.modes import Selection, all_selections

APP = PurePosixPath("/app")
# Variables the rendered files interpolate; a developer's shell must not change what is asserted.
INTERPOLATED = (
    "PORT",
    "HOTMODE_BIND",
    "BASE_IMAGE",
    "HOST_UID",
    "HOST_GID",
    "HOTMODE_REVISION",
    "HOTMODE_SOURCE_DIGEST",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
)
LABELS = ["prod core", "prod saas", "dev core", "dev saas"]


def merged(config: Config) -> dict[str, dict[str, Any]]:
    """`compose config` of every mode x edition of `config`, keyed by label ("dev saas")."""
    compose = find_compose()
    with pytest.MonkeyPatch.context() as patch:
        for name in INTERPOLATED:
            patch.delenv(name, raising=False)
        return {
            s.label: compose.config_dict(
                layout.compose_files(config, s), layout.project_name(config, s)
            )
            for s in all_selections(config)
        }


@pytest.fixture(scope="module")
def gateway_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    folder = copy_gateway(tmp_path_factory.mktemp("compose") / "linkedin-gateway")
    # The saas edition's env file; its variable must reach saas and only saas.
    (folder / "deployment" / ".env.prod.saas").write_text("SAAS_ONLY=yes\n")
    config = load_config(folder / "hotmode.toml")
    # What the renderer writes now (test_render keeps the committed copy equal to it).
    write_files(render_files(config), force=True)
    return config


@pytest.fixture(scope="module")
def documents(gateway_config: Config) -> dict[str, dict[str, Any]]:
    return merged(gateway_config)


@pytest.fixture(params=LABELS)
def case(
    request: pytest.FixtureRequest, gateway_config: Config, documents: dict[str, dict[str, Any]]
) -> Iterator[tuple[Selection, dict[str, Any]]]:
    mode, edition = request.param.split()
    yield Selection(mode, edition, "test", "test"), documents[request.param]


def service_of(document: dict[str, Any], name: str = "backend") -> dict[str, Any]:
    assert sorted(document["services"]) == ["backend", "postgres"]
    service: dict[str, Any] = document["services"][name]
    return service


def is_inside(path: str, folder: Path) -> bool:
    resolved = Path(path).resolve()
    return resolved == folder or resolved.is_relative_to(folder)


def mount_points(service: dict[str, Any]) -> list[PurePosixPath]:
    targets = [PurePosixPath(v["target"]) for v in service.get("volumes", [])]
    targets += [PurePosixPath(t.split(":")[0]) for t in service.get("tmpfs", [])]
    return targets


def test_every_mode_and_edition_merges(documents: dict[str, dict[str, Any]]) -> None:
    assert sorted(documents) == sorted(LABELS)


def test_each_combination_sets_its_edition_and_its_own_project(
    case: tuple[Selection, dict[str, Any]], gateway_config: Config
) -> None:
    selection, document = case
    service = service_of(document)

    assert document["name"] == layout.project_name(gateway_config, selection)
    assert service["environment"]["LG_BACKEND_EDITION"] == selection.edition
    assert service["environment"]["HOTMODE_MODE"] == selection.mode
    assert service["labels"]["hotmode.mode"] == selection.mode
    assert service["labels"]["hotmode.edition"] == selection.edition
    # The saas env file reaches saas, in both modes, and nothing else.
    assert ("SAAS_ONLY" in service["environment"]) is (selection.edition == "saas")


def test_no_two_combinations_share_a_project_container_volume_or_network(
    documents: dict[str, dict[str, Any]],
) -> None:
    for names in (
        [d["name"] for d in documents.values()],
        [service_of(d)["container_name"] for d in documents.values()],
        [d["networks"]["default"]["name"] for d in documents.values()],
    ):
        assert len(set(names)) == len(LABELS), names
    # Dev keeps its logs in the mounted tree, so Compose drops the unused volume there.
    volumes = [v["name"] for d in documents.values() for v in d.get("volumes", {}).values()]
    assert len(volumes) == len(set(volumes)) >= 2, volumes


@pytest.mark.parametrize("label", ["prod core", "prod saas"])
def test_prod_bakes_the_source_and_locks_the_container_down(
    label: str, documents: dict[str, dict[str, Any]], gateway_config: Config
) -> None:
    service = service_of(documents[label])
    source = gateway_config.source

    for volume in service["volumes"]:
        if volume["type"] == "bind":
            assert not is_inside(volume["source"], source), volume
    assert service["volumes"] == [
        {"type": "volume", "source": "logs", "target": "/app/logs"},
        {
            "type": "bind",
            "source": str(gateway_config.deployment / ".env"),
            "target": "/app/.env",
            "read_only": True,
            "bind": {},
        },
    ]
    assert service["command"] == ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "7778"]
    assert not any("reload" in part for part in service["command"])
    assert service.get("entrypoint") is None
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    uid, _, gid = service["user"].partition(":")
    assert uid.isdigit() and int(uid) > 0, service["user"]
    assert gid.isdigit() and int(gid) > 0, service["user"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["cap_drop"] == ["ALL"]
    assert service["build"]["target"] == "prod"
    assert service["image"] == "linkedin-gateway:prod"
    assert "HOT_RELOAD_ENABLED" not in service["environment"]
    assert "DEBUG" not in service["environment"]
    assert service["healthcheck"]["test"][:2] == ["CMD", "python"]
    assert service["ports"][0]["host_ip"] == "127.0.0.1"


@pytest.mark.parametrize("label", ["dev core", "dev saas"])
def test_dev_mounts_the_source_and_reloads_with_its_own_image(
    label: str, documents: dict[str, dict[str, Any]], gateway_config: Config
) -> None:
    service = service_of(documents[label])
    prod = service_of(documents[label.replace("dev", "prod")])

    source_mounts = [
        v
        for v in service["volumes"]
        if v["type"] == "bind" and Path(v["source"]).resolve() == gateway_config.source
    ]
    assert len(source_mounts) == 1
    assert source_mounts[0]["target"] == str(APP)
    assert not source_mounts[0].get("read_only", False)
    # Nothing is mounted inside the source mount: such a mount point would leave a stub in the
    # host tree, and would hide the host's file from the server.
    for target in mount_points(service):
        assert target == APP or not target.is_relative_to(APP), target

    command = service["command"]
    assert "--reload" in command
    assert command[command.index("--log-level") + 1] == "debug"
    assert not {"pip", "apt-get", "install"} & set(command)
    environment = service["environment"]
    assert environment["DEBUG"] == "true"
    assert environment["LOG_LEVEL"] == "DEBUG"
    assert environment["PYTHONUNBUFFERED"] == "1"
    assert environment["HOT_RELOAD_ENABLED"] == "true"
    pycache = PurePosixPath(environment["PYTHONPYCACHEPREFIX"])
    assert pycache.is_absolute() and not pycache.is_relative_to(APP)

    assert service["build"]["target"] == "dev"
    assert service["image"] == "linkedin-gateway:dev"
    assert service["image"] != prod["image"]


def test_an_edition_without_env_file_does_not_inherit_the_defaults(tmp_path: Path) -> None:
    config = load_config(make_pyproject_app(tmp_path))
    write_files(render_files(config))
    (config.deployment / ".env.community").write_text("COMMUNITY_ONLY=1\n")
    (config.deployment / ".env.cloud").write_text("CLOUD_ONLY=1\n")

    environments = {
        label: document["services"]["web"]["environment"]
        for label, document in merged(config).items()
    }

    for label, environment in environments.items():
        mode, edition = label.split()
        assert environment["SHOP_EDITION"] == edition
        assert ("COMMUNITY_ONLY" in environment) is (edition == "community"), label
        assert ("CLOUD_ONLY" in environment) is (edition == "cloud"), label
        assert ("SHOP_FAKE_PAYMENTS" in environment) is (mode == "dev"), label
    assert environments["prod pro"]["SHOP_SEATS"] == "50"
    assert environments["dev cloud"]["SHOP_REGION"] == "eu"


def test_a_configuration_compose_rejects_is_an_error_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    ports: 7\n")
    with pytest.raises(ComposeError, match=r"^Compose rejected docker-compose.yml: .*ports"):
        find_compose().config([broken], "broken")


def test_without_any_compose_the_error_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HOTMODE_COMPOSE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    find_compose.cache_clear()
    try:
        with pytest.raises(ComposeError, match="no Docker Compose v2 found; install the Docker"):
            find_compose()
    finally:
        find_compose.cache_clear()


# --- the companion: PostgreSQL beside the app ---------------------------------------------------


def test_every_combination_has_its_own_database_container_and_data_volume(
    documents: dict[str, dict[str, Any]],
) -> None:
    containers = [service_of(d, "postgres")["container_name"] for d in documents.values()]
    data = [d["volumes"]["pgdata"]["name"] for d in documents.values()]

    assert containers == [
        "linkedin-gateway-postgres",
        "linkedin-gateway-saas-postgres",
        "linkedin-gateway-dev-postgres",
        "linkedin-gateway-dev-saas-postgres",
    ]
    # Dev data never touches prod data, nor one edition's the other's.
    assert data == [
        "linkedin-gateway_pgdata",
        "linkedin-gateway-saas_pgdata",
        "linkedin-gateway-dev_pgdata",
        "linkedin-gateway-dev-saas_pgdata",
    ]
    for document in documents.values():
        mounted = [v for v in service_of(document, "postgres")["volumes"] if v["type"] == "volume"]
        assert mounted == [
            {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}
        ]


def test_the_app_waits_for_a_healthy_database_named_by_its_service(
    case: tuple[Selection, dict[str, Any]],
) -> None:
    _, document = case
    app = service_of(document)

    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["environment"]["DATABASE_URL"] == (
        "postgresql+asyncpg://gateway@postgres:5432/gateway"
    )
    assert app["environment"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"  # noqa: S105
    assert service_of(document, "postgres")["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_the_database_password_is_a_file_never_an_environment_value(
    case: tuple[Selection, dict[str, Any]], gateway_config: Config
) -> None:
    selection, document = case
    database = service_of(document, "postgres")
    source = Path(document["secrets"]["db_password"]["file"])

    assert database["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"  # noqa: S105
    for service in (database, service_of(document)):
        assert [s["source"] for s in service["secrets"]] == ["db_password"]
        assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in service["environment"])
    if selection.dev:
        # Dev's dev-only value, rendered beside the files; prod's is the user's, git-ignored.
        assert source == gateway_config.deployment / "dev-secrets" / "db_password"
        assert source.read_text() == "gateway-dev-only"
    else:
        assert source == gateway_config.deployment / "secrets" / "db_password"


@pytest.mark.parametrize("label", ["prod core", "prod saas"])
def test_prod_hardens_the_database_as_far_as_the_image_allows(
    label: str, documents: dict[str, dict[str, Any]], gateway_config: Config
) -> None:
    database = service_of(documents[label], "postgres")

    assert database["read_only"] is True
    assert database["tmpfs"] == ["/tmp", "/var/run/postgresql"]
    assert database["cap_drop"] == ["ALL"]
    assert "cap_add" not in database
    assert database["security_opt"] == ["no-new-privileges:true"]
    assert database["user"] == "postgres"
    assert database["deploy"]["resources"]["limits"]["memory"]
    assert database["logging"]["options"]["max-size"] == "10m"
    # Not published in prod; the init scripts are mounted read-only.
    assert "ports" not in database
    init = [v for v in database["volumes"] if v["type"] == "bind"]
    assert init == [
        {
            "type": "bind",
            "source": str(gateway_config.root / "database" / "init"),
            "target": "/docker-entrypoint-initdb.d",
            "read_only": True,
            "bind": {},
        }
    ]


def test_dev_publishes_the_database_on_127_0_0_1_only(
    documents: dict[str, dict[str, Any]],
) -> None:
    for label in ("dev core", "dev saas"):
        ports = service_of(documents[label], "postgres")["ports"]
        assert [(p["host_ip"], p["published"], p["target"]) for p in ports] == [
            ("127.0.0.1", "5432", 5432)
        ]
