"""The corpora of real projects and the roles a reviewer gives each service, read in place.

Three sets live beside the repository (`../shared/corpus`, `corpus2`, `corpus3`), never copied
in. `corpus2` and `corpus3` carry the reviewer's roles in their own `runs.txt` (`run NAME --prod
-f FILE...` then `# roles: svc=role(why) ...`, "as prod" repeating the project's prod line);
`corpus` lists only the runs, and its roles are written here, in `corpus-roles.txt`, in the same
form. A run Compose itself refuses is marked, and its right answer is exit 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ROLE = re.compile(r"(\S+)=(app|worker|job|companion|other|unknown)\b(\([^)]*\))?")
_HERE = Path(__file__).resolve().parent
NAMES = ("corpus", "corpus2", "corpus3")


@dataclass
class Run:
    """One `check -f` run of a corpus: its files, its mode and what a reviewer expects."""

    corpus: str
    label: str
    folder: Path
    mode: str
    files: tuple[str, ...]
    roles: dict[str, str] = field(default_factory=dict)
    # Why Compose refuses the file set (its message, or part of it), when it does.
    refused: str | None = None

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.label}"


def shared() -> Path | None:
    """The folder holding the corpora: `HOTMODE_SHARED`, else `../shared` beside this checkout,
    else the workplace's `/work/shared`; None when none holds a corpus."""
    places = [Path(p) for p in [os.environ.get("HOTMODE_SHARED", "")] if p]
    places += [_HERE.parents[2].parent / "shared", Path("/work/shared")]
    for place in places:
        if any((place / name / "runs.txt").is_file() for name in NAMES):
            return place.resolve()
    return None


def _roles(text: str, base: dict[str, str]) -> dict[str, str]:
    roles = dict(base) if text.startswith("as prod") else {}
    for match in ROLE.finditer(text):
        roles[match.group(1)] = match.group(2)
    for gone in re.findall(r"\(no ([\w.-]+)\)", text):
        roles.pop(gone, None)
    return roles


def _runs(corpus: str, folder: Path, roles_file: Path | None) -> list[Run]:
    lines = (folder / "runs.txt").read_text(encoding="utf-8").splitlines()
    if roles_file is not None:
        lines += roles_file.read_text(encoding="utf-8").splitlines()
    runs: list[Run] = []
    by_label: dict[str, Run] = {}
    prod: dict[Path, dict[str, str]] = {}
    current: Run | None = None
    for line in lines:
        if line.startswith("run "):
            words = line.split()
            if words[2].startswith("--"):  # run NN-name --prod -f a -f b
                project, mode, files = words[1], words[2][2:], words[3:]
                label = f"{project.split('-')[0]}-{mode}"
                files = [f for f in files if f != "-f"]
                count = sum(r.label.startswith(label) for r in runs)
                label += f"-{count + 1}" if count else ""
                project_folder = folder / project
            else:  # run LABEL FOLDER MODE FILE...
                label, project, mode, *files = words[1:]
                project_folder = folder / project
            current = Run(corpus, label, project_folder, mode, tuple(files))
            runs.append(current)
            by_label[label] = current
        elif line.startswith("roles ") and roles_file is not None:
            _, label, text = line.split(" ", 2)
            run = by_label[label]
            run.roles.update(_roles(text, prod.get(run.folder, {})))
            if run.mode == "prod":
                prod.setdefault(run.folder, dict(run.roles))
        elif current is not None and line.startswith("# roles:"):
            text = line.removeprefix("# roles:").strip()
            current.roles.update(_roles(text, prod.get(current.folder, {})))
            if current.mode == "prod":
                prod.setdefault(current.folder, dict(current.roles))
        elif current is not None and line.startswith("# expect: compose-rejects"):
            found = re.search(r"refuses: ([^;]+?);", line)
            current.refused = found.group(1) if found else "Compose rejected"
        elif line.startswith("refused ") and roles_file is not None:
            _, label, reason = line.split(" ", 2)
            by_label[label].refused = reason
    return runs


def corpus_runs(corpus: str, place: Path | None = None) -> list[Run]:
    """Every run of one corpus, with the reviewer's roles; [] when the corpus is not here."""
    place = place or shared()
    folder = place / corpus if place else None
    if folder is None or not (folder / "runs.txt").is_file():
        return []
    roles_file = _HERE / "data" / "corpus-roles.txt" if corpus == "corpus" else None
    return _runs(corpus, folder, roles_file)
