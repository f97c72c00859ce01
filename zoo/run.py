"""The zoo: every real app of ../shared/apps adopted and run end to end with no hand edit.

For each app (a folder with BAR.env saying how a test exercises it), in a PID and network
namespace of its own (`unshare --pid --net --fork --mount-proc`, loopback up), from a copy in a
temporary folder outside the project:

  init      `hotmode init --from .` writes hotmode.toml, then `render --adopt` exits 0
  up        `up --native --dev --detach` serves the app's ping route, its database beside it
  schema    the schema: BAR.env's command through `hotmode exec` (or nothing to run)
  row       a row created (over HTTP, or the app's own code through `hotmode exec`) and listed
  edit      an edit of the app's file served
  restart   `down`, `up`: the row is still there
  prod      `switch --prod` serves its own database (migrated by a job or `hotmode exec`)
  clean     `down --volumes --yes` leaves no process and no data behind

One line per app and step, then a total. The apps' requirements are installed once into a venv
cached by their hash (with hotmode, editable, on top). Exit 1 only when a step that
zoo/expected.toml lists as holding for an app fails: the other steps are reported, never hidden.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def find_apps() -> Path:
    """`HOTMODE_ZOO_APPS`, else `../shared/apps` beside this checkout, else the workplace's own
    `/work/shared/apps` (a clone elsewhere, as CI's may be)."""
    places = [Path(p) for p in [os.environ.get("HOTMODE_ZOO_APPS", "")] if p]
    places += [REPO.parent / "shared" / "apps", Path("/work/shared/apps")]
    return next((p for p in places if p.is_dir()), places[0] if places else REPO)


APPS = find_apps()
EXPECTED = REPO / "zoo" / "expected.toml"
CACHE = Path(os.environ.get("HOTMODE_ZOO_CACHE", Path.home() / ".cache" / "hotmode-zoo"))
STEPS = ("init", "up", "schema", "row", "edit", "restart", "prod", "clean")
APP_TIMEOUT = 600


def read_bar(app: Path) -> dict[str, str]:
    """BAR.env's variables, as the shell reads them."""
    script = f"set -a; . {shlex.quote(str(app / 'BAR.env'))}; env -0"
    out = subprocess.run(
        ["bash", "-c", script], env={}, capture_output=True, check=True
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def venv_for(app: Path, bar: dict[str, str], say: bool) -> Path:
    """A venv with the app's requirements and hotmode, made once per requirements hash."""
    requirements = app / bar["APP_REQUIREMENTS"]
    digest = hashlib.sha256()
    for part in (requirements.read_bytes(), (REPO / "pyproject.toml").read_bytes()):
        digest.update(part)
    digest.update(f"{sys.version}{REPO}".encode())
    venv = CACHE / digest.hexdigest()[:16]
    if (venv / ".complete").is_file():
        return venv
    if say:
        print(f"zoo: installing {app.name}'s requirements into {venv}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # The app's pins first, then hotmode over them (it may need a newer uvicorn: both work).
    for args in (["-r", str(requirements)], ["-e", f"{REPO}[compose,audit]"]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
    (venv / ".complete").touch()
    return venv


# ---- inside the namespace ---------------------------------------------------------------


class Run:
    """One app's steps, in its own namespaces; prints one line per step."""

    def __init__(self, app: Path, venv: Path, work: Path) -> None:
        self.app = app
        self.bar = read_bar(app)
        self.venv = venv
        self.root = work / app.name
        self.port = 0
        self.log = work / "zoo.log"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HOTMODE_", "HOT_RELOAD", "DOCKER_", "VIRTUAL_ENV"))
        }
        # Natively: no engine, so companions run as local processes.
        env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
        )
        return env

    def hotmode(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        argv = [str(self.venv / "bin" / "hotmode"), *args]
        try:
            result = subprocess.run(
                argv, cwd=self.root, env=self.env(), capture_output=True, text=True,
                timeout=timeout, check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            result = subprocess.CompletedProcess(argv, 124, str(exc.stdout), f"timed out: {exc}")
        with self.log.open("a") as log:
            log.write(f"$ hotmode {' '.join(args)} -> {result.returncode}\n")
            log.write(result.stdout + result.stderr + "\n")
        return result

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (OSError, ValueError) as exc:
            return 0, str(exc)

    def wait(self, predicate, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.3)
        return False

    def serving(self) -> bool:
        return self.wait(lambda: self.get(self.bar["APP_PING"])[0] == 200)

    def listed(self) -> bool:
        status, body = self.get(self.bar["APP_LIST"])
        return status == 200 and self.bar["APP_MARK"] in body

    def exec_in(self, folder: str, command: str) -> subprocess.CompletedProcess[str]:
        where = shlex.quote(str(self.root / folder))
        return self.hotmode("exec", "--", "sh", "-c", f"cd {where} && {command}")

    def create(self) -> str | None:
        """A row made the way BAR.env says; None when done, else why not."""
        if self.bar.get("APP_CREATE_CMD"):
            made = self.exec_in(self.bar.get("APP_CREATE_DIR", "."), self.bar["APP_CREATE_CMD"])
            return None if made.returncode == 0 else last_line(made)
        words = shlex.split(self.bar["APP_CREATE"])
        base = f"http://127.0.0.1:{self.port}"
        words = [base + w if w.startswith("/") else w for w in words]
        made = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *words],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return None if made.stdout.startswith("2") else f"POST answered {made.stdout}"

    def schema(self) -> str | None:
        command = self.bar.get("APP_SCHEMA_CMD", "")
        if not command:
            return None
        done = self.exec_in(self.bar.get("APP_SCHEMA_DIR", "."), command)
        return None if done.returncode == 0 else last_line(done)

    def steps(self):  # type: ignore[no-untyped-def]
        """Each step's outcome, in order: (step, None) when it holds, else (step, why)."""
        shutil.copytree(self.app, self.root, ignore=shutil.ignore_patterns("__pycache__"))
        self.root.parent.chmod(0o755)
        for name in ("BAR.env", "SOURCE.txt", "VALIDATED.md"):
            (self.root / name).unlink(missing_ok=True)
        git(self.root, "init", "-q")
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", "the project as it is")

        adopted = self.hotmode("init", "--from", ".")
        declaration = self.root / "hotmode.toml"
        if not declaration.is_file():
            yield "init", f"exit {adopted.returncode}: {last_line(adopted)}"
            return
        rendered = self.hotmode("render", "--adopt")
        if rendered.returncode != 0:
            yield "init", f"render --adopt exit {rendered.returncode}: {last_line(rendered)}"
            return
        self.port = int(tomllib.loads(declaration.read_text()).get("port", 8000))
        # What init names as a value only the team has (prod's own password): the answer.
        for named in re.findall(r"prod reads (.+?): create it", adopted.stdout):
            for path in named.split(", "):
                secret = self.root / path
                secret.parent.mkdir(parents=True, exist_ok=True)
                secret.write_text(secrets.token_hex(12) + "\n")
        lost = adopted.stdout.count("not carried")
        yield "init", None if adopted.returncode == 0 else f"exit 1 ({lost} not carried)"
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", "adopted")

        up = self.hotmode("up", "--native", "--dev", "--detach")
        if up.returncode != 0 or not self.serving():
            yield "up", f"exit {up.returncode}: {last_line(up)}"
            return
        yield "up", None
        yield "schema", self.schema()
        made = self.create()
        yield "row", made or (None if self.listed() else "the list lacks the row")

        edited = self.root / self.bar["APP_EDIT_FILE"]
        text = edited.read_text()
        edited.write_text(text.replace(self.bar["APP_EDIT_FROM"], self.bar["APP_EDIT_TO"]))
        seen = self.wait(
            lambda: self.bar["APP_EDIT_TO"] in self.get(self.bar["APP_PING"])[1], timeout=30
        )
        yield "edit", None if seen else "the edit was not served within 30 s"
        edited.write_text(text)

        self.hotmode("down")
        again = self.hotmode("up", "--native", "--dev", "--detach")
        if again.returncode != 0 or not self.serving():
            yield "restart", f"up again: exit {again.returncode}: {last_line(again)}"
        else:
            yield "restart", None if self.listed() else "the row is gone after down and up"

        yield "prod", self.prod()
        yield "clean", self.clean()

    def prod(self) -> str | None:
        switched = self.hotmode("switch", "--prod", "--native")
        if switched.returncode != 0:
            return f"exit {switched.returncode}: {last_line(switched)}"
        if not self.serving():
            return "prod does not serve the ping route"
        if self.listed():
            return "prod lists dev's row: not its own database"
        if self.bar.get("APP_SCHEMA_CMD") and "job" not in switched.stdout:
            failed = self.schema()
            if failed:
                return f"schema in prod: {failed}"
        made = self.create()
        if made:
            return f"a row in prod: {made}"
        return None if self.listed() else "prod's list lacks its row"

    def clean(self) -> str | None:
        done = self.hotmode("down", "--volumes", "--yes")
        if done.returncode != 0:
            return f"exit {done.returncode}: {last_line(done)}"
        # Orphans are this process's children here (it is the namespace's init): reap them.
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        left = [
            line
            for line in subprocess.run(
                ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if int(line.split()[0]) > 1 and "ps -eo" not in line and "zoo/run.py" not in line
        ]
        data = self.root / ".hotmode" / "data"
        kept = [str(p.relative_to(self.root)) for p in data.rglob("*") if not p.is_dir()]
        if left or kept:
            return f"left behind: {'; '.join(left + kept)[:200]}"
        return None


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or ln.startswith("hotmode:")]
    return ((errors or lines or ["no output"])[-1]).strip()[:240]


def git(root: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="zoo", GIT_AUTHOR_EMAIL="zoo@localhost")
    env.update(GIT_COMMITTER_NAME="zoo", GIT_COMMITTER_EMAIL="zoo@localhost")
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def inside(app: Path, venv: Path, work: Path) -> int:
    """In the namespace: bring loopback up, run every step, print one JSON line per step."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    run = Run(app, venv, work)
    done = set()
    try:
        for step, why in run.steps():
            done.add(step)
            print(json.dumps({"step": step, "why": why}), flush=True)
    except Exception as exc:  # the zoo reports it; the next app still runs
        print(json.dumps({"step": "crash", "why": f"{type(exc).__name__}: {exc}"}), flush=True)
    for step in STEPS:
        if step not in done:
            print(json.dumps({"step": step, "why": "not reached"}), flush=True)
    return 0


# ---- outside ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", help="only these apps (folder names)")
    parser.add_argument(
        "--inside", nargs=3, metavar=("APP", "VENV", "WORK"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.inside:
        app, venv, work = (Path(p) for p in options.inside)
        return inside(app, venv, work)
    if not APPS.is_dir():
        print(f"zoo: no apps at {APPS} (no ../shared here): nothing to run, passed")
        return 0
    expected = tomllib.loads(EXPECTED.read_text()) if EXPECTED.is_file() else {}
    apps = sorted(p for p in APPS.iterdir() if (p / "BAR.env").is_file())
    if options.apps:
        apps = [p for p in apps if p.name in options.apps]
    started = time.monotonic()
    held = total = 0
    broken: list[str] = []
    for app in apps:
        bar = read_bar(app)
        try:
            venv = venv_for(app, bar, say=True)
        except subprocess.CalledProcessError as exc:
            print(f"zoo: {app.name}: its requirements do not install: {exc.stderr[-2000:]}")
            venv = None
        must = set(expected.get(app.name, {}).get("native", []))
        outcomes: list[tuple[str, str | None]] = []
        work = Path(tempfile.mkdtemp(prefix="hotmode-zoo-"))
        work.chmod(0o755)
        if venv is not None:
            argv = [
                "unshare", "--pid", "--net", "--fork", "--mount-proc",
                str(venv / "bin" / "python"), str(Path(__file__).resolve()),
                "--inside", str(app), str(venv), str(work),
            ]  # fmt: skip
            try:
                out = subprocess.run(
                    argv, capture_output=True, text=True, timeout=APP_TIMEOUT, check=False
                ).stdout
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            for line in out.splitlines():
                if line.startswith("{"):
                    item = json.loads(line)
                    outcomes.append((item["step"], item["why"]))
        seen = {s for s, _ in outcomes}
        outcomes += [(s, "not run") for s in STEPS if s not in seen]
        for step, why in outcomes:
            if step == "crash":
                print(f"{app.name:<48} crash    {why}")
                continue
            total += 1
            ok = why is None
            held += ok
            mark = "ok  " if ok else ("FAIL" if step in must else "fail")
            print(f"{app.name:<48} {step:<8} {mark} {'' if ok else why}", flush=True)
            if not ok and step in must:
                broken.append(f"{app.name} {step}")
        log = work / "zoo.log"
        if broken and log.is_file():
            print(f"--- {app.name}: the last of {log}\n{log.read_text()[-4000:]}")
        if os.environ.get("HOTMODE_ZOO_KEEP"):
            print(f"zoo: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    print(f"zoo: {held} of {total} steps hold across {len(apps)} apps ({minutes:.1f} min)")
    if broken:
        print(f"zoo: expected to hold but failed: {', '.join(broken)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
