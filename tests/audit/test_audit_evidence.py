"""Roles from weighed evidence, one pattern a test: what decides, and `unknown` when nothing does.

Services are given as Compose merges them (long volume syntax, `depends_on` as a mapping), so
`classify` is tested without the Compose binary; the overrides and the report go through
`check`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotmode.audit import checker, commands, origin
from hotmode.audit.model import Kind
from hotmode.audit.roles import classify
from hotmode.errors import UsageError


def _built(tmp_path: Path, folder: str, dockerfile: str) -> dict[str, Any]:
    context = tmp_path / folder
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    return {"context": str(context), "dockerfile": "Dockerfile"}


def _kinds(services: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {name: role.kind.value for name, role in classify(services, **kwargs).items()}


@pytest.mark.parametrize(
    ("dockerfile", "why"),
    [
        (
            "FROM debian:12\nRUN apt-get update && apt-get install -y postgresql-15\n"
            'USER postgres\nCMD ["postgres", "-D", "/srv/pg"]\n',
            "runs postgres",
        ),
        ("FROM ubuntu:24.04\nRUN apt-get install -y mysql-server\n", "installs mysql-server"),
        (
            'FROM alpine:3.20\nVOLUME ["/var/lib/postgresql/data"]\n',
            "ships postgres's data directory",
        ),
    ],
)
def test_a_database_built_from_a_distribution_image_is_a_companion(
    tmp_path: Path, dockerfile: str, why: str
) -> None:
    app = {"command": "gunicorn app:app"}
    roles = classify({"db": {"build": _built(tmp_path, "db", dockerfile)}, "web": app})
    assert roles["db"].kind is Kind.COMPANION and why in roles["db"].reason
    assert roles["web"].is_app


def test_services_that_share_the_app_s_build_are_its_workers_and_jobs(tmp_path: Path) -> None:
    build = _built(tmp_path, "app", "FROM python:3.12-slim\nCMD gunicorn app:app\n")
    services = {
        "web": {"build": build},
        "indexer": {"build": build, "command": "python -m shop.index --forever"},
        "init": {"build": build, "command": "python -m shop.bootstrap", "restart": "no"},
        "fixtures": {"build": build, "command": "python load.py"},
        "api": {"build": build, "command": "python load.py --serve"},
        "after": {
            "image": "busybox",
            "depends_on": {"fixtures": {"condition": "service_completed_successfully"}},
        },
    }
    services["api"]["depends_on"] = {"fixtures": {"condition": "service_completed_successfully"}}
    roles = classify(services)
    assert roles["web"].kind is Kind.APP and roles["web"].reason == "runs gunicorn"
    assert roles["indexer"].kind is Kind.WORKER and "shares web's build" in roles["indexer"].reason
    assert roles["init"].kind is Kind.JOB and 'restart: "no"' in roles["init"].reason
    assert roles["fixtures"].kind is Kind.JOB and "waits for it" in roles["fixtures"].reason


def test_a_worker_script_behind_a_wait_wrapper_is_a_worker() -> None:
    build = {"context": "/nowhere/app", "dockerfile": "Dockerfile"}
    wrapped = "/bin/bash -c 'wait-for-it.sh db:5432 -- /app/worker.sh start'"
    services = {
        "web": {"build": build, "entrypoint": "/bin/bash -c 'wait-for-it.sh db:5432 -- start.sh'"},
        "tasks": {"build": build, "entrypoint": wrapped},
        "db": {"image": "acme/db:1", "volumes": [{"type": "volume", "target": "/var/lib/mysql"}]},
    }
    roles = classify(services)
    assert {n: r.kind.value for n, r in roles.items()} == {
        "web": "app",
        "tasks": "worker",
        "db": "companion",
    }
    assert "mysqld's data directory" in roles["db"].reason


def test_a_one_shot_chown_others_wait_for_is_a_job() -> None:
    services = {
        "perms": {"image": "busybox:1", "command": "chown -R 1000:1000 /data"},
        "web": {
            "image": "acme/api:1",
            "command": "uvicorn main:app",
            "depends_on": {"perms": {"condition": "service_completed_successfully"}},
        },
    }
    assert _kinds(services) == {"perms": "job", "web": "app"}


def test_file_chores_web_servers_and_dev_containers_beside_the_app() -> None:
    services = {
        "backend": {"image": "acme/api:1", "command": "gunicorn app:app"},
        "fixer": {"image": "bash:5", "command": "chown 9999:9999 -R /media"},
        "media": {
            "build": {"context": "/nowhere/media", "dockerfile": "Dockerfile"},
            "ports": [{"target": 80, "published": "4000"}],
        },
        "devcontainer": {
            "build": {"context": "/nowhere/.devcontainer", "dockerfile": "Dockerfile"},
            "command": "sleep infinity",
        },
    }
    roles = classify(services)
    assert {n: r.kind.value for n, r in roles.items()} == {
        "backend": "app",
        "fixer": "job",
        "media": "companion",
        "devcontainer": "other",
    }
    assert "idles" in roles["devcontainer"].reason


def test_a_backend_shipped_as_the_repository_s_own_image_is_the_app_and_says_why() -> None:
    services = {
        "backend": {"image": "ghcr.io/org/backend:unset", "depends_on": {"db": {}}},
        "db": {"image": "postgres:16"},
    }
    roles = classify(services, repository="org/backend")
    assert roles["backend"].kind is Kind.APP
    assert "the image of this repository (org/backend)" in roles["backend"].reason
    # The same image from another repository is a pulled image alone: unknown, not a guess.
    assert classify(services, repository="org/other")["backend"].kind is Kind.UNKNOWN
    assert classify(services)["backend"].kind is Kind.UNKNOWN


def test_a_mounted_folder_of_python_source_is_evidence_wherever_it_is_mounted(
    tmp_path: Path,
) -> None:
    source = tmp_path / "webodm"
    (source / "app").mkdir(parents=True)
    (source / "app" / "views.py").write_text("x = 1\n")
    other = tmp_path / "static"
    other.mkdir()
    (other / "site.css").write_text("")
    mount = {"type": "bind", "source": str(source), "target": "/webodm"}
    services = {
        "web": {"image": "acme/webodm:1", "volumes": [mount]},
        "front": {
            "image": "acme/front:1",
            "volumes": [{"type": "bind", "source": str(other), "target": "/srv"}],
        },
    }
    roles = classify(services)
    assert roles["web"].kind is Kind.APP and "holds Python source" in roles["web"].reason
    assert roles["front"].kind is Kind.OTHER and "the app is web" in roles["front"].reason


@pytest.mark.parametrize(
    ("service", "why"),
    [
        ({"image": "ollama/ollama:0.3"}, "ollama/ollama:0.3"),
        ({"image": "ghcr.io/huggingface/text-generation-inference:2"}, "text-generation"),
        ({"image": "getmeili/meilisearch:v1.8"}, "meilisearch"),
    ],
)
def test_model_servers_search_engines_and_monitoring_uis_are_companions(
    service: dict[str, Any], why: str
) -> None:
    roles = classify({"s": service, "web": {"image": "acme/api:1", "command": "gunicorn a:b"}})
    assert roles["s"].kind is Kind.COMPANION and why in roles["s"].reason


def test_a_built_proxy_in_front_of_the_app_is_a_companion() -> None:
    services = {
        "web": {"image": "acme/api:1", "command": "gunicorn app:app"},
        "front": {
            "build": {"context": "/nowhere/front", "dockerfile": "Dockerfile"},
            "ports": [{"target": 80, "published": "8080"}],
            "depends_on": {"web": {}},
        },
        "tests": {
            "build": {"context": "/nowhere/e2e", "dockerfile": "Dockerfile"},
            "depends_on": {"web": {}},
        },
    }
    roles = classify(services)
    assert roles["front"].kind is Kind.COMPANION and "in front of web" in roles["front"].reason
    assert roles["tests"].kind is Kind.OTHER and "a client of web" in roles["tests"].reason


def test_several_weak_candidates_are_unknown_and_name_each_other() -> None:
    services = {
        "a": {"build": {"context": "/nowhere/a", "dockerfile": "Dockerfile"}},
        "b": {"image": "acme/b:1"},
        "db": {"image": "postgres:16"},
    }
    roles = classify(services)
    assert {n: r.kind for n, r in roles.items()} == {
        "a": Kind.UNKNOWN,
        "b": Kind.UNKNOWN,
        "db": Kind.COMPANION,
    }
    assert roles["a"].candidates == ("a", "b")
    assert _kinds(services, declared_app="b") == {"a": "other", "b": "app", "db": "companion"}
    annotated = {"a": Kind.APP, "b": Kind.WORKER}
    assert _kinds(services, annotated=annotated) == {"a": "app", "b": "worker", "db": "companion"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "compose.yml"
    path.write_text(text)
    return path


TWO = """\
services:
  a:
    build: ./a
  b:
    build: ./b
    x-hotmode: {role: %s}
"""


def test_check_reports_an_unknown_app_with_the_fix_and_the_overrides_decide(
    tmp_path: Path,
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    path = _write(tmp_path, (TWO % "unknown").replace("    x-hotmode: {role: unknown}\n", ""))
    report = checker.check([checker.file_stack([path], "dev")])
    unknown = [u for u in report.unknowns if u.rule_id == "HM-A06"]
    assert {u.service for u in unknown} == {"a", "b"}
    assert all("--app NAME" in u.reason and "x-hotmode" in u.reason for u in unknown)
    assert not [f for f in report.findings if f.rule_id.startswith("HM-D")]

    named = checker.check([checker.file_stack([path], "dev", ["b"])])
    (roles,) = named.roles.values()
    assert (roles["a"].kind, roles["b"].kind) == (Kind.OTHER, Kind.APP)
    assert not [u for u in named.unknowns if u.rule_id == "HM-A06"]

    annotated = _write(tmp_path, TWO % "worker")
    (roles,) = checker.check([checker.file_stack([annotated], "dev")]).roles.values()
    assert (roles["a"].kind, roles["b"].kind) == (Kind.APP, Kind.WORKER)
    assert roles["b"].reason == "x-hotmode role: worker"


def test_a_misspelt_role_annotation_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = _write(tmp_path, TWO % "apps")
    with pytest.raises(UsageError, match="role 'apps'; use one of app, worker"):
        checker.check([checker.file_stack([path], "dev")])


def test_only_companions_is_a_project_wide_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path, "services:\n  db:\n    image: postgres:16\n")
    report = checker.check([checker.file_stack([path], "prod")])
    (unknown,) = [u for u in report.unknowns if u.rule_id == "HM-A06"]
    assert unknown.service is None and "no service shows evidence" in unknown.reason


@pytest.mark.parametrize(
    ("command", "seen"),
    [
        ("./bin/start.sh", "./bin/start.sh"),
        ("dev_server", "dev_server"),
        ("python manage.py run -h 0.0.0.0", "manage.py run"),
    ],
)
def test_a_command_that_hides_its_server_is_unknown_in_dev_and_prod(
    tmp_path: Path, command: str, seen: str
) -> None:
    source = tmp_path / "app"
    source.mkdir()
    (source / "main.py").write_text("app = None\n")
    path = _write(
        tmp_path,
        f"services:\n  web:\n    image: python:3.12-slim\n    command: {command}\n"
        f"    volumes: ['./app:/srv/app']\n",
    )
    for mode, rule in (("dev", "HM-D01"), ("prod", "HM-P02")):
        report = checker.check([checker.file_stack([path], mode)])
        assert not [f for f in report.findings if f.rule_id == rule]
        (unknown,) = [u for u in report.unknowns if u.rule_id == rule]
        assert "cannot see the command" in unknown.reason and seen in unknown.reason


def test_uwsgi_py_autoreload_reloads() -> None:
    argv = commands.words("uwsgi --http :8000 --module app.wsgi --py-autoreload 1")
    assert commands.server(argv) == "uwsgi"
    assert commands.reloading(argv) == "uwsgi --py-autoreload"
    assert commands.reloading(commands.words("uwsgi --ini app.ini")) is None


def test_a_dockerfile_is_read_as_buildkit_reads_it(tmp_path: Path) -> None:
    from hotmode.audit.build import parse_dockerfile

    text = (
        "ARG BASE=python:3.12-slim\n"
        "FROM ${BASE} AS base\n"
        "RUN <<EOF\npip install \\\n  gunicorn\nUSER root\nEOF\n"
        "FROM base AS prod\n"
        "LABEL org.opencontainers.image.revision=$REV other=1\n"
        "USER \\\n  app\n"
        'CMD ["gunicorn", "app:app"]\n'
    )
    parsed = parse_dockerfile(tmp_path / "Dockerfile", text)
    assert parsed.base_image("prod", {}) == "python:3.12-slim"
    # The heredoc's `USER root` is a line of the script, not an instruction.
    assert parsed.user("prod") == "app"
    assert parsed.labels("prod") == {"org.opencontainers.image.revision", "other"}
    assert parsed.command("prod") == "gunicorn app:app"


@pytest.mark.parametrize(
    ("target", "unknown"), [("/webodm", True), ("/usr/src/paperless", True), ("/var/lib/x", False)]
)
def test_a_missing_folder_mounted_where_code_may_be_is_unknown_in_dev(
    tmp_path: Path, target: str, unknown: bool
) -> None:
    path = _write(
        tmp_path,
        f"services:\n  web:\n    image: python:3.12\n    command: uvicorn main:app --reload\n"
        f"    volumes: ['./not-here:{target}']\n",
    )
    report = checker.check([checker.file_stack([path], "dev")])
    unsure = [u for u in report.unknowns if u.rule_id == "HM-D01"]
    found = [f for f in report.findings if f.rule_id == "HM-D01"]
    if unknown:
        assert len(unsure) == 1 and "not-here is not here" in unsure[0].reason and not found
    else:
        assert not unsure and "the source is not mounted" in found[0].message


def test_a_monitoring_ui_of_the_workers_is_not_a_companion() -> None:
    web = {"image": "acme/api:1", "command": "gunicorn a:b"}
    for flower in ({"image": "acme/api:1", "command": "celery -A shop flower"},
                   {"image": "acme/api:1", "command": "celery-flower"}):  # fmt: skip
        role = classify({"flower": flower, "web": web})["flower"]
        assert role.kind is Kind.OTHER and "monitoring UI" in role.reason


def _project(tmp_path: Path, dockerfile: str, files: dict[str, str]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_command_copied_into_the_image_is_read_from_the_repository(tmp_path: Path) -> None:
    """cookiecutter-django: `/start-celeryworker` is the repository's worker script."""
    folder = _project(
        tmp_path,
        "FROM python:3.12\nWORKDIR /app\n"
        "COPY --chown=django:django ./compose/django/celery/worker/start /start-celeryworker\n"
        "COPY ./compose/django/start /start\nCOPY . /app\n",
        {
            "compose/django/celery/worker/start": "#!/bin/bash\nset -o errexit\n"
            "exec newrelic-admin run-program celery -A config.celery_app \\\n  worker -l INFO\n",
            "compose/django/start": "#!/bin/bash\npython manage.py migrate\n"
            "exec gunicorn config.wsgi --bind 0.0.0.0:5000  # the server\n",
        },
    )
    build = {"context": str(folder), "dockerfile": "Dockerfile"}
    services = {
        "django": {"build": build, "image": "shop_django", "command": "/start"},
        "celeryworker": {"build": build, "image": "shop_worker", "command": "/start-celeryworker"},
        # An old watcher over an unread function: the shared build still makes it a worker.
        "beat": {"build": build, "image": "shop_beat", "command": "watchgod tasks.main"},
    }
    roles = classify(services)
    assert roles["django"].kind is Kind.APP and "gunicorn" in roles["django"].reason
    assert roles["celeryworker"].kind is Kind.WORKER
    assert "celery worker" in roles["celeryworker"].reason
    assert roles["beat"].kind is Kind.WORKER and "shares django's build" in roles["beat"].reason


def test_a_script_behind_a_symbolic_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "start").write_text("exec celery -A x worker\n")
    folder = _project(tmp_path / "repo", "FROM python:3.12\nCOPY ./start /start\n", {})
    (folder / "start").symlink_to(outside / "start")
    build = {"context": str(folder), "dockerfile": "Dockerfile"}
    role = classify({"w": {"build": build, "command": "/start"}})["w"]
    assert role.kind is not Kind.WORKER


def test_what_an_image_installs_is_not_what_it_runs(tmp_path: Path) -> None:
    folder = _project(
        tmp_path,
        "FROM debian:bookworm-slim\nRUN apt-get install -y postgresql-client python3 && "
        './install.sh --postgresql-version 16\nCMD ["gunicorn", "app:app"]\n',
        {},
    )
    role = classify({"web": {"build": {"context": str(folder)}}})["web"]
    assert role.kind is Kind.APP and "gunicorn" in role.reason
    server = _project(tmp_path / "db", "FROM debian:12\nRUN apt-get install -y postgresql-16\n", {})
    role = classify({"db": {"build": {"context": str(server)}}})["db"]
    assert role.kind is Kind.COMPANION and "installs postgresql-16" in role.reason


def test_a_build_folder_s_name_is_not_evidence() -> None:
    build = {"context": "/nowhere/shop-pg-redis-docker", "dockerfile": "Dockerfile"}
    services = {"web": {"build": build}, "redis": {"image": "redis:7"}}
    role = classify(services)["web"]
    assert role.kind is Kind.APP and "a redis build" not in role.reason


def test_a_python_service_beside_the_app_s_server_is_not_a_second_app() -> None:
    services = {
        "api": {"image": "python:3.12", "command": "uvicorn app.main:app"},
        "model": {"image": "python:3.12-slim", "command": "python -m model_server"},
    }
    roles = classify(services)
    assert roles["api"].kind is Kind.APP
    assert roles["model"].kind is Kind.OTHER and "the app is api" in roles["model"].reason


def test_a_lone_idle_dev_container_is_where_the_app_runs() -> None:
    services = {
        "dev": {"build": {"context": "/nowhere"}, "command": "sleep infinity"},
        "db": {"image": "postgres:16"},
    }
    assert classify(services)["dev"].kind is Kind.APP
    services["web"] = {"image": "acme/api:1", "command": "gunicorn a:b"}
    assert classify(services)["dev"].kind is Kind.OTHER


def test_a_tool_without_a_restart_policy_among_services_that_restart_is_run_on_demand() -> None:
    services = {
        "web": {"image": "acme/api:1", "command": "gunicorn a:b", "restart": "always"},
        "db": {"image": "postgres:16", "restart": "always"},
        "backup": {"image": "acme/aws-cli:1"},
    }
    assert classify(services)["backup"].kind is Kind.JOB
    services["db"] = {"image": "postgres:16"}
    assert classify(services)["backup"].kind is Kind.OTHER


def test_a_dispatching_entrypoint_says_nothing_of_the_service(tmp_path: Path) -> None:
    """`case "$1" in web) gunicorn;; worker) celery` runs either: its words decide nothing."""
    folder = _project(
        tmp_path,
        'FROM python:3.12\nCOPY entrypoint.sh /entrypoint.sh\nENTRYPOINT ["/entrypoint.sh"]\n',
        {
            "entrypoint.sh": 'case "$1" in\n  web) exec gunicorn a:b ;;\n'
            "  worker) exec celery -A a worker ;;\nesac\n"
        },
    )
    build = {"context": str(folder)}
    services = {"w": {"build": build, "entrypoint": ["/entrypoint.sh"], "command": ["worker"]}}
    assert "gunicorn" not in classify(services)["w"].reason


def test_an_entrypoint_that_sets_up_then_runs_its_arguments_is_its_arguments(
    tmp_path: Path,
) -> None:
    """wagtail's bakerydemo: the entrypoint migrates, then `exec "$@"` runs uwsgi."""
    folder = _project(
        tmp_path,
        "FROM python:3.12\nWORKDIR /code/\nADD . /code/\n"
        'ENTRYPOINT ["/code/docker-entrypoint.sh"]\nCMD ["uwsgi", "/code/etc/uwsgi.ini"]\n',
        {"docker-entrypoint.sh": '#!/bin/sh\npython manage.py migrate --noinput\nexec "$@"\n'},
    )
    role = classify({"app": {"build": {"context": str(folder)}}})["app"]
    assert role.kind is Kind.APP and "uwsgi" in role.reason


def test_a_start_script_is_what_it_ends_by_running_not_its_set_up(tmp_path: Path) -> None:
    folder = _project(
        tmp_path,
        "FROM python:3.12\nCOPY start.sh /start.sh\n",
        {"start.sh": "python manage.py migrate\npython manage.py collectstatic\npython main.py\n"},
    )
    role = classify({"app": {"build": {"context": str(folder)}, "command": "/start.sh"}})["app"]
    assert role.kind is Kind.APP and "migrate" not in role.reason


def test_the_repository_is_named_by_its_git_remote(tmp_path: Path) -> None:
    """A checkout of `acme/shop` that runs `ghcr.io/acme/shop`: its own image, the app."""
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:Acme/Shop.git"],
        check=True,
    )
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    assert origin.repository(deploy) == "acme/shop"
    (deploy / "compose.yml").write_text(
        "services:\n  shop:\n    image: ghcr.io/acme/shop:2.1\n  s3:\n    image: minio/minio\n"
    )
    report = checker.check([checker.file_stack([deploy / "compose.yml"], "prod")])
    (roles,) = report.roles.values()
    assert roles["shop"].is_app and "image of this repository (acme/shop)" in roles["shop"].reason


@pytest.mark.parametrize(
    ("image", "repository", "own"),
    [
        ("ghcr.io/paperless-ngx/paperless-ngx:latest", "paperless-ngx/paperless-ngx", True),
        ("docker.io/searxng/searxng:latest", "searxng/searxng-docker", True),
        ("zulip/zulip:9", "zulip/docker-zulip", True),
        ("registry.local:5000/acme/shop", "acme/shop", True),
        ("ckan/ckan-base-datapusher:1", "ckan/ckan-docker", False),
        ("other/searxng:1", "searxng/searxng-docker", False),
        ("postgres:16", "acme/postgres", False),
    ],
)
def test_the_repository_s_own_image(image: str, repository: str, own: bool) -> None:
    assert origin.own_image(image, repository) is own


def test_only_copies_from_the_context_lead_to_the_repository() -> None:
    from hotmode.audit.build import parse_dockerfile

    text = (
        "FROM python:3.12\nWORKDIR /app\nCOPY --from=build --chown=a:a start /start\n"
        'COPY --from=build ["worker", "/worker"]\nCOPY --chown=a:a ["s/beat", "/beat"]\n'
        "COPY ./c/web /web\nCOPY . .\n"
    )
    copies = parse_dockerfile(Path("Dockerfile"), text).copies(None)
    assert [(c.sources, c.destination) for c in copies] == [
        (("s/beat",), "/beat"),
        (("c/web",), "/web"),
        ((".",), "/app/"),
    ]
    assert copies[2].source_of("/app/bin/run.sh") == "bin/run.sh"
