"""`check -f` on real projects' Compose files: every service gets the role a reviewer gives it.

Three corpora of public Python backends (`../shared/corpus`, `corpus2`, `corpus3`) are kept
beside the repository with where each came from; they are read from there, never copied in.
`corpus2` and `corpus3` carry their Dockerfiles and start scripts, `corpus` only the Compose
files. The roles are a reviewer's (`corpus_runs` reads them): the check must reach them from
the evidence alone, or say `unknown`; a wrong role is a guess, and no app rule may fire on a
service the reviewer calls a companion or other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.corpus_runs import NAMES, Run, corpus_runs, shared
from hotmode.audit import checker
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Kind, Report
from hotmode.errors import ComposeError

PLACE = shared()
if PLACE is None:
    pytest.skip(
        "no corpus of real projects in ../shared; set HOTMODE_SHARED", allow_module_level=True
    )
RUNS = {run.name: run for name in NAMES for run in corpus_runs(name, PLACE)}
JUDGED = sorted(name for name, run in RUNS.items() if run.refused is None)
REFUSED = sorted(name for name, run in RUNS.items() if run.refused is not None)


def _check(run: Run, monkeypatch: pytest.MonkeyPatch) -> Report:
    monkeypatch.chdir(run.folder)
    return checker.check([checker.file_stack([Path(f) for f in run.files], run.mode)])


def test_every_run_has_the_reviewer_s_roles() -> None:
    assert all(run.roles or run.refused for run in RUNS.values())


@pytest.mark.parametrize("name", JUDGED)
def test_every_service_gets_the_reviewer_s_role(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RUNS[name]
    report = _check(run, monkeypatch)
    (roles,) = report.roles.values()
    judged = {service: role.kind.value for service, role in roles.items()}
    # Right, or unknown: never a guess. Every service profiles hide is judged too.
    wrong = {
        service: (role, run.roles.get(service))
        for service, role in judged.items()
        if role != "unknown" and role != run.roles.get(service)
    }
    assert not wrong, {n: roles[n].reason for n in wrong}
    assert set(judged) == set(run.roles)
    assert all(role.reason for role in roles.values())
    # No app rule fires on what the reviewer calls a companion or an "other", and nothing
    # says "does not reload" about a server it cannot see (corpus 1 has no Dockerfile).
    rules = load_rules()
    for finding in report.findings:
        registered = rules.get(finding.rule_id)
        about_code = registered is not None and registered.service_check is not None
        if about_code and Kind.COMPANION not in registered.kinds and finding.service:
            assert run.roles[finding.service] not in {"companion", "other"}, finding
        if run.corpus == "corpus":  # only Compose files: no server's flags can be seen
            assert "does not reload" not in finding.message, finding
    # Where no service is the app, the report says so instead of skipping the app rules.
    if "app" not in judged.values():
        assert any(u.rule_id == "HM-A06" for u in report.unknowns)


@pytest.mark.parametrize("name", REFUSED)
def test_file_sets_compose_refuses_exit_2_with_the_reason(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RUNS[name]
    with pytest.raises(ComposeError, match=run.refused):
        _check(run, monkeypatch)


def test_a_service_behind_a_profile_is_judged_and_its_profile_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every service of nickjj's template sits behind a profile: none is left unjudged."""
    run = RUNS.get("corpus3/01-prod")
    if run is None:
        pytest.skip("corpus3 is not here")
    (roles,) = _check(run, monkeypatch).roles.values()
    assert roles["web"].is_app and roles["web"].profile == "web"
    assert roles["js"].profile == "assets"


def test_a_start_script_copied_into_the_image_decides_the_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = RUNS.get("corpus3/06-prod")
    if run is None:
        pytest.skip("corpus3 is not here")
    (roles,) = _check(run, monkeypatch).roles.values()
    assert "celery worker" in roles["celeryworker"].reason
    assert roles["django"].is_app and "gunicorn" in roles["django"].reason


def _corpus1(label: str) -> Run:
    run = RUNS.get(f"corpus/{label}")
    if run is None:
        pytest.skip("corpus is not here")
    return run


def test_a_reloader_hidden_in_a_script_or_an_image_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev = _check(_corpus1("11-dev"), monkeypatch)
    (hidden,) = [u for u in dev.unknowns if u.rule_id == "HM-D01"]
    assert hidden.service == "api" and "docker-entrypoint-api-local.sh" in hidden.reason
    prod = _check(_corpus1("11-prod"), monkeypatch)
    unsure = {u.service for u in prod.unknowns if u.rule_id == "HM-P02"}
    assert unsure == {"api", "worker", "beat-worker"}
    assert not [f for f in prod.findings if f.rule_id == "HM-P02"]


def test_the_evidence_that_decided_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = _check(_corpus1("04-dev"), monkeypatch).roles
    (judged,) = roles.values()
    assert "connects to it as postgres" in judged["web-db"].reason
    (judged,) = _check(_corpus1("12-prod"), monkeypatch).roles.values()
    assert "taiga-back" in judged["taiga-async"].reason
    (judged,) = _check(_corpus1("14-prod"), monkeypatch).roles.values()
    assert "in front of backend" in judged["proxy"].reason


# The start scripts real projects copy into their images, as the reload rules read them:
# nothing to say (the script's server reloads in dev, or does not in prod), or open (the
# script's branches disagree, and which runs depends on its variables).
SCRIPTED = [
    ("corpus3/04-dev", "squarelet_django", "HM-D01", "quiet"),  # runserver_plus in /start
    ("corpus3/04-prod", "django", "HM-P02", "quiet"),  # gunicorn in /start
    ("corpus3/06-prod", "django", "HM-P02", "quiet"),  # gunicorn in /start
    ("corpus3/06-dev", "django", "HM-D01", "open"),  # gunicorn --reload, or not, by variables
    ("corpus2/01-dev", "uwsgi", "HM-D01", "quiet"),  # uwsgi --py-autoreload, past wait-for-it
    ("corpus2/01-prod", "uwsgi", "HM-P02", "quiet"),  # uwsgi, copied with seven other scripts
]


@pytest.mark.parametrize(("name", "service", "rule", "said"), SCRIPTED)
def test_the_reload_rules_read_the_start_script_the_image_copies(
    name: str, service: str, rule: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name not in RUNS:
        pytest.skip(f"{name} is not in this copy of the corpora")
    report = _check(RUNS[name], monkeypatch)
    hits = [f.message for f in report.findings if f.rule_id == rule and f.service == service]
    unknowns = [u.reason for u in report.unknowns if u.rule_id == rule and u.service == service]
    if said == "quiet":
        assert hits == [] and unknowns == [], (hits, unknowns)
    else:
        (reason,) = unknowns
        assert hits == [] and "/start (" in reason and "some of its branches only" in reason
