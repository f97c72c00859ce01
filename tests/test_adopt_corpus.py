"""`init --from` on real projects' Compose files (`../shared/corpus`), copied into tmp_path at
their repository paths at test time, never into the project.

The corpus holds the Compose files (and a few committed env files) but not the apps' source,
nor the git-ignored env files. So each project is adopted twice:
- as it is: adoption must refuse with a reason that names what is missing (the build context,
  the Dockerfile, the source), never with a raw Compose error about a missing env file;
- with a minimal app planted where its Compose files build it (a requirements file and a module
  at the target its command names): the files must adopt, the declaration load (which refuses
  one data volume in two places), and `render --adopt` succeed. Projects whose app ships as an
  image refuse, naming the image and --app.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from helpers import corpus, run_hotmode
from hotmode.config import load_config

CORPUS = corpus()

# Where a checkout has the app: (source folder, module file) as the Compose files build it.
PLANTED = {
    "01-fastapi-full-stack-fastapi-template": ("backend", "app/main.py"),
    "02-testdrivenio-django-on-docker": ("app", "hello_django/wsgi.py"),
    "03-testdrivenio-flask-on-docker": ("services/web", "manage.py"),
    "04-testdrivenio-fastapi-tdd-docker": ("project", "app/main.py"),
    "05-jonra1993-fastapi-alembic-sqlmodel-async": ("backend", "app/main.py"),
    "06-rednafi-fastapi-nano": (".", "app/main.py"),
    "07-nsidnev-fastapi-realworld-example-app": (".", "app/main.py"),
    "09-healthchecks-healthchecks": (".", "hc/wsgi.py"),
    "10-getredash-redash": (".", "redash/app.py"),
    "11-makeplane-plane": ("apps/api", "plane/asgi.py"),
    "13-mealie-recipes-mealie": (".", "mealie/app.py"),
    "14-docker-awesome-compose-nginx-flask-mysql": ("nginx-flask-mysql/backend", "hello.py"),
}
# The folder a user runs `init --from .` in, when not the repository's root.
ROOT = {
    "14-docker-awesome-compose-nginx-flask-mysql": "nginx-flask-mysql",
    "15-tmatens-compose-lint-fixtures": "tests",
}
# What the refusal names, as the files are (Compose files only).
AS_IS = {
    "01-fastapi-full-stack-fastapi-template": "Dockerfile backend/Dockerfile the build names",
    "02-testdrivenio-django-on-docker": "built from app/, which is not here",
    "03-testdrivenio-flask-on-docker": "built from services/web/, which is not here",
    "04-testdrivenio-fastapi-tdd-docker": "built from project/, which is not here",
    "05-jonra1993-fastapi-alembic-sqlmodel-async": "built from backend/, which is not here",
    "06-rednafi-fastapi-nano": "no requirements file",
    "07-nsidnev-fastapi-realworld-example-app": "Dockerfile Dockerfile the build names",
    "08-netbox-community-netbox-docker": "runs docker.io/netboxcommunity/netbox",
    "09-healthchecks-healthchecks": "Dockerfile docker/Dockerfile the build names",
    "10-getredash-redash": "Dockerfile Dockerfile the build names",
    "11-makeplane-plane": "built from apps/api/, which is not here",
    "12-taigaio-taiga-docker": "runs taigaio/taiga-back:latest and mounts no source folder",
    "13-mealie-recipes-mealie": "Dockerfile docker/Dockerfile the build names",
    "14-docker-awesome-compose-nginx-flask-mysql": "built from backend/, which is not here",
    "15-tmatens-compose-lint-fixtures": "no Compose files",
}
PROJECTS = sorted(AS_IS)


def _copy(name: str, into: Path) -> Path:
    """The project's corpus files at their repository paths; the folder to run init in."""
    for line in (CORPUS / name / "SOURCE.txt").read_text().splitlines():
        match = re.search(r"path: (\S+) .*saved-as: (\S+)", line)
        assert match, line
        target = into / match.group(1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name / match.group(2), target)
    return into / ROOT.get(name, ".")


def _plant(root: Path, source: str, module: str) -> None:
    folder = root / source
    (folder / module).parent.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("fastapi\n")
    (folder / "Dockerfile").write_text("FROM python:3.12-slim\n")
    package = module.split("/")[0].removesuffix(".py")
    (folder / module).write_text(
        f"import {package}\nfrom fastapi import FastAPI\n\napp = FastAPI()\napplication = app\n"
    )


def test_the_corpus_is_all_here() -> None:
    assert sorted(p.name for p in CORPUS.glob("[0-9]*")) == PROJECTS


@pytest.mark.parametrize("name", PROJECTS)
def test_a_real_project_adopts_or_names_what_is_missing(name: str, tmp_path: Path) -> None:
    root = _copy(name, tmp_path)
    as_is = run_hotmode(root, "init", "--from", ".")
    assert as_is.returncode in (1, 2), as_is.stdout
    assert not (root / "hotmode.toml").exists()
    error = as_is.stderr.strip().splitlines()[-1]
    assert AS_IS[name] in error, error
    assert "env file" not in error and "Compose rejected" not in error, error
    if name not in PLANTED:
        return
    _plant(tmp_path, *PLANTED[name])
    adopted = run_hotmode(root, "init", "--from", ".")
    # Exit 1: each names what it could not carry (an env file's variables, a frontend).
    assert adopted.returncode in (0, 1), adopted.stderr
    assert "not carried" in adopted.stdout + adopted.stderr or adopted.returncode == 0
    config = load_config(root / "hotmode.toml")  # refuses one volume in two places
    assert config.source.is_dir()
    rendered = run_hotmode(root, "render", "--adopt")
    assert rendered.returncode == 0, rendered.stderr
