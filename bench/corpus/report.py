"""Precision of `check -f`'s roles over the corpora of real projects, per rule of evidence.

Every run of `../shared/corpus`, `corpus2` and `corpus3` is checked as `hotmode check -f` checks
it; each service's role is compared with the reviewer's (`tests/audit/corpus_runs.py` reads
them). A service is right, wrong (a guess: the role is not the reviewer's), or unknown (the
check said it cannot tell). Each judged role carries the rule of evidence that decided it, so a
rule that guesses shows up as the source of wrong roles. Also counted: app rules (rules that
run only on the app, its workers and jobs) that fired on a companion or an "other".

    .venv/bin/python bench/corpus/report.py [--json FILE] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from audit.corpus_runs import NAMES, Run, corpus_runs, shared  # noqa: E402
from hotmode.audit import checker  # noqa: E402
from hotmode.audit.catalog import load_rules  # noqa: E402
from hotmode.audit.model import Kind  # noqa: E402
from hotmode.errors import HotmodeError  # noqa: E402


def judge(run: Run) -> dict[str, object]:
    """One run checked: each service's verdict, and the app rules that fired off the app."""
    here = Path.cwd()
    os.chdir(run.folder)
    try:
        stack = checker.file_stack([Path(f) for f in run.files], run.mode)
        report = checker.check([stack])
    except HotmodeError as exc:
        refused = run.refused is not None and run.refused in str(exc)
        return {"refused": str(exc), "right_refusal": refused}
    finally:
        os.chdir(here)
    (roles,) = report.roles.values()
    services = {}
    for name in sorted(set(roles) | set(run.roles)):
        role = roles.get(name)
        judged = role.kind.value if role else "absent"
        expected = run.roles.get(name, "unlisted")
        verdict = "right" if judged == expected else "wrong"
        verdict = "unknown" if judged == "unknown" else verdict
        services[name] = {
            "expected": expected,
            "judged": judged,
            "verdict": verdict,
            "evidence": role.evidence if role else "absent",
            "profile": role.profile if role else None,
            "reason": role.reason if role else "",
        }
    rules = load_rules()
    misfired = []
    for finding in report.findings:
        registered = rules.get(finding.rule_id)
        # An app rule is one that does not run on companions: it is about the app's code.
        if registered is None or registered.service_check is None or not finding.service:
            continue
        if Kind.COMPANION in registered.kinds:
            continue
        expected = run.roles.get(finding.service)
        if expected in {Kind.COMPANION.value, Kind.OTHER.value}:
            misfired.append(f"{finding.rule_id} on {finding.service} (reviewer: {expected})")
    return {"services": services, "misfired": misfired, "refused_expected": run.refused}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every verdict to this file")
    parser.add_argument("--verbose", action="store_true", help="print every wrong or unknown")
    options = parser.parse_args()
    place = shared()
    if place is None:
        print("no corpus here (../shared/corpus*); set HOTMODE_SHARED")
        return 2
    results: dict[str, dict[str, object]] = {}
    totals: dict[str, Counter[str]] = {}
    per_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for corpus in NAMES:
        count: Counter[str] = Counter()
        for run in corpus_runs(corpus, place):
            result = judge(run)
            results[run.name] = result
            count["runs"] += 1
            if "refused" in result:
                count["refused right" if result["right_refusal"] else "refused wrongly"] += 1
                if options.verbose and not result["right_refusal"]:
                    print(f"{run.name}: refused: {result['refused']}")
                continue
            services = result["services"]
            assert isinstance(services, dict)
            verdicts = [s["verdict"] for s in services.values()]
            count.update(verdicts)
            count["runs all right"] += all(v == "right" for v in verdicts)
            misfired = result["misfired"]
            assert isinstance(misfired, list)
            count["app rules off the app"] += len(misfired)
            for name, service in services.items():
                per_rule[service["evidence"]][service["verdict"]] += 1
                if options.verbose and service["verdict"] != "right":
                    print(
                        f"{run.name} {name}: {service['verdict']}: judged {service['judged']}"
                        f" [{service['evidence']}], reviewer {service['expected']}:"
                        f" {service['reason']}"
                    )
            if options.verbose:
                for line in misfired:
                    print(f"{run.name}: app rule off the app: {line}")
        totals[corpus] = count
    print(
        f"{'corpus':10} {'runs':>5} {'all right':>9} {'right':>6} {'wrong':>6} {'unknown':>8}"
        f" {'app rules off app':>18} {'refusals right':>15}"
    )
    for corpus, count in totals.items():
        refusals = count["refused right"] + count["refused wrongly"]
        print(
            f"{corpus:10} {count['runs']:>5} {count['runs all right']:>9} {count['right']:>6}"
            f" {count['wrong']:>6} {count['unknown']:>8} {count['app rules off the app']:>18}"
            f" {count['refused right']:>8} of {refusals}"
        )
    print(f"\n{'rule of evidence':28} {'right':>6} {'wrong':>6} {'unknown':>8}")
    for rule, count in sorted(per_rule.items(), key=lambda item: (-item[1]["wrong"], item[0])):
        print(f"{rule:28} {count['right']:>6} {count['wrong']:>6} {count['unknown']:>8}")
    if options.json:
        options.json.write_text(json.dumps({"totals": totals, "runs": results}, indent=1) + "\n")
    wrong = sum(count["wrong"] + count["app rules off the app"] for count in totals.values())
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
