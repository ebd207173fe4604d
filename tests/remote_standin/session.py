"""One "cloud session" of the stand-in ``claude`` (tests/remote_standin/claude),
started detached by ``claude -p ... --environment ... --ref <branch>``. It acts as
a session on a runner would, reading only its prompt and its messages:

clone the environment's repository (``REMOTE_STANDIN_REPO``, a bare repository),
check out ``--ref``, write ``work/stage-N.md`` and commit it ("stage work: <name>")
and push; then finish with an empty completion commit carrying the trailer line the
prompt names (``Autorun-Stage: <run>/<n>``) and push again. Steered by:

- ``REMOTE_STANDIN_HOLD``: a directory; stage N waits before its completion until
  ``<dir>/stage-N`` exists (a test holds sessions mid-run with it)
- ``REMOTE_STANDIN_ASK``: comma-separated stage numbers that first commit a question
  file (``.autorun/questions/<name>.md``), push, and wait for a message with the
  answers, which they write into their work file (the question file removed)
- ``REMOTE_STANDIN_SHARED``: every stage writes ``work/shared.md`` (conflicts)
- ``REMOTE_STANDIN_BREAK``: comma-separated stage numbers whose work also holds
  ``work/BROKEN`` (a verify command can refuse it); after their completion they wait
  for autorun's message that the checks failed, then remove it, commit, and push a
  new completion commit

A message starting ``autorun: stop`` ends the session at once, pushing nothing more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

WAIT = 300.0


def main(sdir: Path) -> None:
    meta = json.loads((sdir / "meta.json").read_text(encoding="utf-8"))
    prompt = (sdir / "prompt.txt").read_text(encoding="utf-8")
    m = re.search(r"You are stage (\d+) \((.*?)\) of the autorun run", prompt)
    t = re.search(r"^\s*(Autorun-Stage: \S+)\s*$", prompt, re.M)
    if not m or not t:
        log(sdir, "prompt names no stage or trailer: nothing to do")
        return
    number, name, trailer = int(m.group(1)), m.group(2), t.group(1)
    ref = meta["ref"]
    work = sdir / "work"
    git(sdir, "clone", "--quiet", "--branch", ref, os.environ["REMOTE_STANDIN_REPO"], str(work))
    seen: set[str] = set()

    def messages() -> list[str]:
        new = []
        for f in sorted((sdir / "inbox").glob("*.txt")):
            if f.name not in seen:
                seen.add(f.name)
                text = f.read_text(encoding="utf-8")
                log(sdir, f"message: {text.splitlines()[0] if text else ''}")
                if text.startswith("autorun: stop"):
                    log(sdir, "stopped")
                    sys.exit(0)
                new.append(text)
        return new

    def push() -> None:
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{ref}")
        log(sdir, f"pushed {git(work, 'rev-parse', 'HEAD')}")

    (work / "work").mkdir(exist_ok=True)
    shared = os.environ.get("REMOTE_STANDIN_SHARED")
    out = work / "work" / ("shared.md" if shared else f"stage-{number}.md")
    out.write_text(f"# {name}\n\nDone by a cloud session.\n", encoding="utf-8")
    broken = str(number) in os.environ.get("REMOTE_STANDIN_BREAK", "").split(",")
    if broken:
        (work / "work" / "BROKEN").write_text("the checks refuse this\n", encoding="utf-8")
    git(work, "add", "work")
    git(work, "commit", "--quiet", "-m", f"stage work: {name}")
    messages()
    push()
    if str(number) in os.environ.get("REMOTE_STANDIN_ASK", "").split(","):
        qdir = work / ".autorun" / "questions"
        qdir.mkdir(parents=True, exist_ok=True)
        (qdir / f"stage-{number}.md").write_text(
            f"# Which colour for {name}?\n\n- Which colour should {name} use?\n\n"
            "The scope does not say.\n",
            encoding="utf-8",
        )
        git(work, "add", ".autorun")
        git(work, "commit", "--quiet", "-m", f"question: which colour for {name}")
        push()
        answer = wait_for(lambda: [x for x in messages() if x.startswith("Answers")])[0]
        with open(out, "a", encoding="utf-8") as fh:
            fh.write("\n" + answer.strip() + "\n")
        git(work, "rm", "--quiet", "-r", ".autorun")
        git(work, "add", "work")
        git(work, "commit", "--quiet", "-m", f"{name}: as answered")
    hold = os.environ.get("REMOTE_STANDIN_HOLD")
    if hold:
        wait_for(lambda: (messages(), (Path(hold) / f"stage-{number}").exists())[1])
    messages()
    git(work, "commit", "--quiet", "--allow-empty", "-m", f"stage {number} complete\n\n{trailer}")
    push()
    if broken:
        log(sdir, "waiting for the checks")
        wait_for(lambda: [x for x in messages() if "checks failed" in x])
        git(work, "rm", "--quiet", "work/BROKEN")
        git(work, "commit", "--quiet", "-m", f"{name}: fixed what the checks refused")
        git(
            work,
            "commit",
            "--quiet",
            "--allow-empty",
            "-m",
            f"stage {number} complete\n\n{trailer}",
        )
        push()
    log(sdir, "done")


def wait_for(pred):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("gave up waiting")


def git(cwd: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {res.stderr}")
    return res.stdout.strip()


def log(sdir: Path, text: str) -> None:
    with open(sdir / "events.log", "a", encoding="utf-8") as fh:
        fh.write(f"{time.time():.3f} {text}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
