"""`hotmode check`: exit codes, one-line errors for bad input, schema-valid JSON and SARIF."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from audit.audit_support import Project
from hotmode.audit.report import SCHEMA
from hotmode.cli import main

HERE = Path(__file__).parent
SARIF_SCHEMA = HERE / "data" / "sarif-schema-2.1.0.json"
GUIDE = HERE.parent / "fixtures" / "guide" / "deployment"
GATEWAY = HERE.parents[1] / "examples" / "linkedin-gateway"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_clean_stack_exits_0(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--prod", "-f", str(project.prod()))
    assert code == 0
    first, last = out.splitlines()[0], out.splitlines()[-1]
    assert first == "services [prod docker-compose.yml]: app: web (runs uvicorn)"
    assert last.startswith("PASS")


def test_findings_at_the_threshold_exit_1_and_below_it_0(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    base = str(project.prod(logging=None))  # HM-A04, medium
    assert _run(capsys, "-f", base)[0] == 1
    assert _run(capsys, "-f", base, "--fail-on", "high")[0] == 0
    assert _run(capsys, "-f", base, "--fail-on", "low")[0] == 1


BAD_INPUT = {
    "malformed YAML": ("services:\n  web: [\n", "malformed YAML"),
    "rejected by Compose": ("services:\n  web:\n    image: x\n    bogus: 1\n", "bogus"),
    "dangling depends_on": (
        "services:\n  web:\n    image: x\n    depends_on: [db]\n",
        "undefined service",
    ),
    "a v1 file": ("web:\n  image: x\n  ports: ['8000:8000']\n", "v1 format"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = BAD_INPUT[case]
    path = tmp_path / "docker-compose.yml"
    path.write_text(text)
    code, out, err = _run(capsys, "-f", str(path))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert str(path) in err and expected in err
    assert "Traceback" not in err


def test_a_missing_overlay_exits_2_naming_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = project.deploy / "docker-compose.saas.yml"
    code, _, err = _run(capsys, "-f", str(project.prod()), "-f", str(missing))
    assert code == 2
    assert str(missing) in err and len(err.strip().splitlines()) == 1


def test_a_missing_declared_overlay_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "hotmode.toml").write_text('name = "app"\nsource = "src"\n')
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "--prod")
    assert code == 2
    assert "docker-compose.yml" in err and "Traceback" not in err


def test_file_lists_do_not_mix_with_all(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--all", "-f", str(project.prod()))
    assert code == 2 and "-f" in err


def test_all_with_a_mode_checks_that_mode_s_editions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(GATEWAY)
    _, out, _ = _run(capsys, "--all", "--dev", "--format", "json")
    assert [m["label"] for m in json.loads(out)["modes"]] == ["dev core", "dev saas"]


def _guide_json(capsys: pytest.CaptureFixture[str], output: str) -> dict[str, object]:
    files = ["docker-compose.yml", "docker-compose.saas.yml", "docker-compose.dev-saas.yml"]
    argv = ["--dev", "--format", output]
    for name in files:
        argv += ["-f", str(GUIDE / name)]
    code, out, _ = _run(capsys, *argv)
    assert code == 1
    document: dict[str, object] = json.loads(out)
    return document


def test_json_output_is_valid_against_its_schema(capsys: pytest.CaptureFixture[str]) -> None:
    document = _guide_json(capsys, "json")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["passed"] is False
    findings = document["findings"]
    assert isinstance(findings, list)
    assert {"HM-D02", "CL-0005"} <= {f["rule_id"] for f in findings}
    assert any(f["waived"] for f in findings)
    assert all("\n" not in f["fix"] and "\n" not in f["message"] for f in findings)


def test_sarif_output_is_valid_sarif_2_1_0(capsys: pytest.CaptureFixture[str]) -> None:
    document = _guide_json(capsys, "sarif")
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator(schema).validate(document)
    runs = document["runs"]
    assert isinstance(runs, list)
    (run,) = runs
    results, rules = run["results"], run["tool"]["driver"]["rules"]
    assert results and all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    located = [r for r in results if "locations" in r]
    assert located and all(
        r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in located
    )
    assert any("suppressions" in r for r in results)


def test_the_schema_rejects_a_malformed_report() -> None:
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "findings": [{}]}, schema)


def test_rules_lists_every_rule_with_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    from hotmode.audit.catalog import load_rules

    code, out, _ = _run(capsys, "--rules")
    assert code == 0
    for rule_id, registered in load_rules().items():
        assert rule_id in out and registered.rule.fix in out
