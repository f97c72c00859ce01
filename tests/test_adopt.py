"""Adopting hotmode: `init` infers and writes the declaration, `render --adopt` moves the old
hand-written files aside, and the README's CI step writes valid SARIF."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema

from conftest import REPO
from helpers import run_hotmode
from hotmode.config import load_config

SARIF_SCHEMA = REPO / "tests" / "audit" / "data" / "sarif-schema-2.1.0.json"
GUIDE = REPO / "tests" / "fixtures" / "guide"


def test_init_infers_the_gateway_shape(tmp_path: Path) -> None:
    (tmp_path / "backend" / "requirements").mkdir(parents=True)
    (tmp_path / "backend" / "main.py").write_text(
        "from fastapi import FastAPI\n\napplication: FastAPI = FastAPI(title='x')\n"
    )
    (tmp_path / "backend" / "requirements" / "base.txt").write_text("fastapi\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My Service"\n')
    result = run_hotmode(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "hotmode.toml")
    assert (config.name, config.source.name, config.target, config.requirements) == (
        "my-service",
        "backend",
        "main:application",
        "requirements/base.txt",
    )
    assert "target main:application: the app object in backend/main.py" in result.stdout


def test_init_never_replaces_a_declaration(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "hotmode.toml").write_text("# mine\n")
    result = run_hotmode(tmp_path, "init", "--yes")
    assert result.returncode == 1
    assert "exists; init never replaces it" in result.stderr
    assert (tmp_path / "hotmode.toml").read_text() == "# mine\n"


def test_init_without_an_app_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run_hotmode(tmp_path, "init")
    assert result.returncode == 2
    assert "no app found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "hotmode.toml").exists()


def test_render_adopt_moves_hand_files_to_a_backup(tmp_path: Path) -> None:
    """The guide's hand-written files: refused by plain render, moved aside by --adopt."""
    root = tmp_path / "project"
    shutil.copytree(GUIDE, root)
    (root / "backend" / "requirements").mkdir(exist_ok=True)
    init = run_hotmode(root, "init", "--yes")
    assert init.returncode == 0, init.stderr
    old = (root / "deployment" / "docker-compose.dev.yml").read_text()
    refused = run_hotmode(root, "render", "--no-validate")
    assert refused.returncode == 1
    assert "kept hand-edited" in refused.stderr
    assert (root / "deployment" / "docker-compose.dev.yml").read_text() == old
    adopted = run_hotmode(root, "render", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    backups = list((root / ".hotmode" / "backup").glob("*/deployment/docker-compose.dev.yml"))
    assert len(backups) == 1
    assert backups[0].read_text() == old
    assert "moved     deployment/docker-compose.dev.yml" in adopted.stdout
    assert run_hotmode(root, "render", "--check").returncode == 0


def test_render_adopt_never_moves_hand_files_through_a_planted_backup_link(
    tmp_path: Path,
) -> None:
    """`.hotmode/backup` as a link out of the project: refused by name, nothing moved (issue 26)."""
    root = tmp_path / "project"
    shutil.copytree(GUIDE, root)
    (root / "backend" / "requirements").mkdir(exist_ok=True)
    assert run_hotmode(root, "init", "--yes").returncode == 0
    old = (root / "deployment" / "docker-compose.dev.yml").read_text()
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / ".hotmode").mkdir(exist_ok=True)
    (root / ".hotmode" / "backup").symlink_to(victim)
    adopted = run_hotmode(root, "render", "--adopt")
    assert adopted.returncode == 2, adopted.stderr
    assert f"{root / '.hotmode' / 'backup'} is a symbolic link" in adopted.stderr
    assert list(victim.iterdir()) == []
    assert (root / "deployment" / "docker-compose.dev.yml").read_text() == old


def test_the_readme_sarif_step_writes_valid_sarif(gateway: Path) -> None:
    """The README's CI step, run as written: its output is SARIF 2.1.0."""
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if "hotmode check" in x and "--format sarif" in x)
    argv = shlex.split(line.split("- run:", 1)[1].split(">", 1)[0])
    assert argv[:2] == ["hotmode", "check"]
    result = subprocess.run(
        [sys.executable, "-m", "hotmode", *argv[1:]],
        cwd=gateway,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), json.loads(SARIF_SCHEMA.read_text()))


def test_init_from_adopts_the_guides_four_modes(tmp_path: Path) -> None:
    """The guide's files: all four modes adopted, then rendered; every env var name and port
    of the old modes is in the new ones, or the report names it."""
    root = tmp_path / "project"
    shutil.copytree(GUIDE, root)
    result = run_hotmode(root, "init", "--from", "deployment")
    assert result.returncode == 1, result.stderr  # SECRET_KEY is not carried, and said so
    config = load_config(root / "hotmode.toml")
    assert (config.name, config.service, config.target, config.port) == (
        "linkedin-gateway", "backend", "main:app", 7778,
    )  # fmt: skip
    assert [e.name for e in config.editions] == ["core", "saas"]
    assert config.edition_variable == "LG_BACKEND_EDITION"
    assert config.dev.log_level == "debug"
    lines = result.stdout.splitlines()
    for label in ("prod core:", "prod saas:", "dev core:", "dev saas:"):
        assert label in lines, result.stdout
    assert "not carried backend: environment SECRET_KEY" in result.stdout
    assert "HM-P09" in result.stdout
    adopted = run_hotmode(root, "render", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert len(list((root / ".hotmode" / "backup").glob("*/deployment/*.yml"))) == 4


SHOP = REPO / "tests" / "fixtures" / "adopt-shop"


def test_init_from_adopts_a_backend_with_its_database(tmp_path: Path) -> None:
    """The shop: backend + postgres, a dev file that sets image: on the built service, an
    edition only in dev, secrets with literal defaults, and a file with invalid YAML."""
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root)
    result = run_hotmode(root, "init", "--from", "compose")
    assert result.returncode == 1, result.stderr  # the broken file was left out
    assert "left out" in result.stderr
    assert "docker-compose.cloud.yml:5: invalid YAML" in result.stderr
    config = load_config(root / "hotmode.toml")
    assert (config.service, config.target, config.port, config.edition_variable) == (
        "api", "main:app", 8080, "SHOP_EDITION",
    )  # fmt: skip
    assert [e.name for e in config.editions] == ["community", "enterprise", "pro"]
    assert dict(config.edition("pro").env)["PRO_FEATURES"] == "reports,exports"
    out = result.stdout
    # Data continuity: each mode keeps the database volume it had.
    assert "kept        db: volume shop_pgdata" in out
    assert "kept        db: volume shop-dev_pgdata-dev" in out
    # Kept, changed with a reason, or named as not carried: nothing silently dropped.
    assert "kept        api: environment DATABASE_URL, SHOP_EDITION" in out
    assert "db: environment POSTGRES_PASSWORD -> POSTGRES_PASSWORD_FILE" in out
    assert "HM-P09" in out
    assert "not carried api: environment SECRET_KEY" in out
    declaration = (root / "hotmode.toml").read_text()
    # The URL's password is named, not written: the app still gets a whole URL.
    assert (
        'DATABASE_URL = "postgresql://shop:{secret:postgres_password}@{host}:{port}/shop"'
        in declaration
    )
    # Every mode x edition keeps the volume it had, by name.
    config = load_config(root / "hotmode.toml")
    (db,) = config.services
    assert dict(db.dev.volumes[0].names) == {
        "community": "shop-dev_pgdata-dev",
        "enterprise": "shop-dev-enterprise_pgdata",
    }
    assert 'secrets = { postgres_password = "shop" }' in declaration  # dev only
    # Natively: the mode's generated password, scram-sha-256 on 127.0.0.1, never trust.
    assert db.native is not None
    assert dict(db.native.env) == {"PGPASSWORD": "{secret:postgres_password}"}
    assert "--auth-host=scram-sha-256" in " ".join(db.native.init)
    assert "trust" not in " ".join(db.native.init)

    adopted = run_hotmode(root, "render", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    checked = run_hotmode(root, "check", "--all", "--fail-on", "high")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_from_a_broken_base_names_it(tmp_path: Path) -> None:
    (tmp_path / "deployment").mkdir()
    (tmp_path / "deployment" / "docker-compose.yml").write_text("services: [\n")
    result = run_hotmode(tmp_path, "init", "--from", "deployment")
    assert result.returncode == 2
    assert "docker-compose.yml:2: invalid YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "hotmode.toml").exists()


def test_init_from_asks_which_service_is_the_app_and_the_overrides_decide(
    tmp_path: Path,
) -> None:
    """Two services built from folders whose Dockerfiles are not there: the evidence cannot
    tell the app, so init names both and the fix; --app or an x-hotmode annotation decides."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
        (tmp_path / name / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "deployment").mkdir()
    compose = tmp_path / "deployment" / "docker-compose.yml"
    text = (
        "services:\n  a:\n    build: ../a\n  b:\n    build: ../b\n  db:\n    image: postgres:16\n"
    )
    compose.write_text(text)
    refused = run_hotmode(tmp_path, "init", "--from", "deployment")
    assert refused.returncode == 2
    assert "it may be a or b" in refused.stderr and "--app NAME" in refused.stderr
    assert not (tmp_path / "hotmode.toml").exists()

    # The port is in none of the files: given, since init never writes a guess.
    named = run_hotmode(tmp_path, "init", "--from", "deployment", "--app", "b", "--port", "8000")
    # The other built service is not carried (hotmode declares the app and its companions), so
    # the declaration is written and the exit code says that not everything was carried.
    assert named.returncode == 1, named.stderr
    assert "not carried service a" in named.stdout
    assert load_config(tmp_path / "hotmode.toml").service == "b"

    (tmp_path / "hotmode.toml").unlink()
    compose.write_text(text.replace("build: ../a\n", "build: ../a\n    x-hotmode: {role: app}\n"))
    annotated = run_hotmode(tmp_path, "init", "--from", "deployment", "--port", "8000")
    assert annotated.returncode == 1, annotated.stderr
    assert "not carried service b" in annotated.stdout
    assert load_config(tmp_path / "hotmode.toml").service == "a"


def test_init_finds_an_app_below_subfolders_with_its_import_root(tmp_path: Path) -> None:
    """`project/app/main.py` importing `app.db`: source `project`, target `app.main:app`, the
    requirements beside it; no health route, so none is written."""
    root = tmp_path / "notes"
    shutil.copytree(REPO / "tests" / "fixtures" / "adopt-notes", root)
    result = run_hotmode(root, "init", "--yes")
    assert result.returncode == 0, result.stderr
    config = load_config(root / "hotmode.toml")
    assert (config.source.name, config.target, config.requirements, config.health) == (
        "project", "app.main:app", "requirements.txt", None,
    )  # fmt: skip
    (root / "hotmode.toml").unlink()
    (root / "project" / "requirements.txt").unlink()
    refused = run_hotmode(root, "init", "--yes")
    assert refused.returncode == 1
    assert "pass --requirements FILE" in refused.stderr
    assert not (root / "hotmode.toml").exists()


def test_init_from_compares_what_env_files_on_disk_set(tmp_path: Path) -> None:
    """Compose's merge of the old files leaves env files out; the variables the files on disk
    set are still the old mode's: kept when hotmode's files have them, else not carried."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "api" / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "api" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        "  api:\n    build: ./api\n    ports: ['8000:8000']\n    env_file: [api.env]\n"
        "  cache:\n    image: redis:7\n    env_file: cache.env\n"
    )
    # PORT only in the env file: hotmode's files set it too, so it is kept.
    (tmp_path / "api.env").write_text("PORT=8000\nSECRET_KEY='s3cret'\n# COMMENTED=1\n")
    (tmp_path / "cache.env").write_text("REDIS_ARGS=--maxmemory 64mb\n")
    result = run_hotmode(tmp_path, "init", "--from", ".")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "  kept        api: environment PORT" in lines
    assert (
        "  not carried api: environment SECRET_KEY (set in api.env: name that file as the "
        "edition's env_file)"
    ) in lines
    assert (
        "  not carried cache: environment REDIS_ARGS (set in cache.env: add it to "
        "[services.cache] environment)"
    ) in lines
    assert "COMMENTED" not in result.stdout


def test_the_app_only_in_a_second_file_is_found_and_the_first_files_database_carried(
    tmp_path: Path,
) -> None:
    """docker-compose.yml holds only the database the team's dev runs beside a native app;
    docker-compose.prod.yml holds the app, built from the source: the app is found there, and
    the database of the first file is carried, its dev volume name kept."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "Dockerfile.prod").write_text("FROM python:3.11-slim\nCOPY . /src\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  app_db:\n    image: postgres:16.3\n"
        "    environment: [POSTGRES_USER=app, POSTGRES_PASSWORD=app, POSTGRES_DB=app]\n"
        "    volumes: [app_db_data:/var/lib/postgresql/data]\n"
        "volumes:\n  app_db_data: {}\n"
    )
    (tmp_path / "docker-compose.prod.yml").write_text(
        "services:\n  app:\n    build: {context: ., dockerfile: Dockerfile.prod}\n"
        "    ports: ['8000:8000']\n"
    )
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    config = load_config(tmp_path / "hotmode.toml")
    assert (config.service, config.port) == ("app", 8000)
    module = config.target.split(":")[0].replace(".", "/")
    assert (config.source / f"{module}.py").resolve() == (tmp_path / "src" / "main.py").resolve()
    (database,) = config.services
    assert database.name == "app_db"
    (volume,) = database.spec("dev").volumes
    assert volume.real_name("unused", "default") == f"{tmp_path.name}_app_db_data"


def test_a_file_named_like_an_edition_that_sets_no_edition_variable_is_not_an_edition(
    tmp_path: Path,
) -> None:
    """`compose-ha.yml` beside `docker-compose.yml` (replicas, no variable set to `ha`): no
    evidence it is an edition, so none is declared and no edition variable is invented; it is
    named as not adopted. An overlay that does set one (`APP_TIER: saas`) stays an edition."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "api" / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "api" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    base = "services:\n  api:\n    build: ./api\n    ports: ['8000:8000']\n"
    (tmp_path / "docker-compose.yml").write_text(base)
    (tmp_path / "compose-ha.yml").write_text("services:\n  api:\n    deploy: {replicas: 2}\n")
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert "not adopted: compose-ha.yml (its name reads as an edition" in adopted.stdout
    text = (tmp_path / "hotmode.toml").read_text()
    assert "edition" not in text, text
    assert [e.name for e in load_config(tmp_path / "hotmode.toml").editions] == ["default"]

    (tmp_path / "hotmode.toml").unlink()
    (tmp_path / "docker-compose.yml").write_text(base + "    environment: {APP_TIER: core}\n")
    (tmp_path / "compose-saas.yml").write_text(
        "services:\n  api:\n    environment: {APP_TIER: saas}\n"
    )
    again = run_hotmode(tmp_path, "init", "--from", ".")
    assert again.returncode == 0, again.stdout + again.stderr
    config = load_config(tmp_path / "hotmode.toml")
    assert (config.edition_variable, [e.name for e in config.editions]) == (
        "APP_TIER", ["core", "saas"],
    )  # fmt: skip


def test_a_bind_mounted_data_folder_is_reported_as_such(tmp_path: Path) -> None:
    """A database whose data was a host folder (`./.data/mysql:/var/lib/mysql`) is not said
    to have kept it in the container: the folder is named, left as it is, and the new volume
    said to start empty. One with no mount at all did keep it in the container."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "api" / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "api" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  api:\n    build: ./api\n    ports: ['8000:8000']\n"
        "  mysql:\n    image: mysql:8\n    volumes: ['./.data/mysql:/var/lib/mysql']\n"
        "  cache:\n    image: redis:7\n"
    )
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    lines = adopted.stdout.splitlines()
    assert (
        "  changed     mysql: a data volume at /var/lib/mysql, one per mode and edition (before, "
        f"its data was the host folder {tmp_path / '.data' / 'mysql'}, bind-mounted; that folder "
        "is left as it is and the new volume starts empty: copy the data in to keep it)"
    ) in lines, adopted.stdout
    assert (
        "  changed     cache: a data volume at /data, one per mode and edition (before, its data "
        "lived in the container and went with it)"
    ) in lines


def test_a_database_built_from_its_own_dockerfile_over_a_known_image_is_carried(
    tmp_path: Path,
) -> None:
    """`db` built from ./db (`FROM postgres:16`, an init script copied in) is the database:
    carried, built from ./db as before, the app's URL pointed at it; natively it runs from
    Debian's packages without the Dockerfile's additions, which is named as not carried."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "api" / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "api" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "Dockerfile").write_text(
        "FROM postgres:16\nCOPY init.sql /docker-entrypoint-initdb.d/\n"
    )
    (tmp_path / "db" / "init.sql").write_text("CREATE TABLE t (id int);\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  api:\n    build: ./api\n    ports: ['8000:8000']\n"
        "    environment: {DATABASE_URL: 'postgresql://app:pw@db:5432/app'}\n"
        "  db:\n    build: ./db\n"
        "    environment: {POSTGRES_USER: app, POSTGRES_PASSWORD: pw, POSTGRES_DB: app}\n"
        "    volumes: ['pgdata:/var/lib/postgresql/data']\n"
        "volumes:\n  pgdata: {}\n"
    )
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    assert adopted.returncode == 1, adopted.stdout + adopted.stderr
    assert "not carried service db" not in adopted.stdout
    assert (
        "  not carried db: natively, postgres runs from Debian's packages, without what db/'s "
        "Dockerfile adds to postgres:16"
    ) in adopted.stdout.splitlines()
    config = load_config(tmp_path / "hotmode.toml")
    (database,) = config.services
    assert database.prod.build is not None and database.prod.build.context == tmp_path / "db"
    assert database.native is not None and database.native.command[0] == "postgres"
    assert dict(database.prod.app_env) == {
        "DATABASE_URL": "postgresql://app:{secret:postgres_password}@{host}:{port}/app"
    }
    assert run_hotmode(tmp_path, "render", "--adopt", timeout=180).returncode == 0
