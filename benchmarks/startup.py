"""Start-up cost of the engine against an earlier commit, measured in one run.

Two trees are timed side by side, their calls interleaved (so a busy machine
slows both alike): this checkout (or ``--this``, a commit), and ``--base`` (a
commit, default ``main``), commits exported with ``git archive`` into a temp
directory. Rows, each a median of
``--calls`` calls and its ratio to ``python -c pass`` measured beside it (no ``-I``:
each tree is put first on ``PYTHONPATH``, which ``-I`` ignores):

- ``autorun --version`` (``python -m autorun_py --version``: the CLI's import
  path);
- ``autorun phase implement started`` from a stage's worktree (the bookkeeping call
  a stage session makes; the lean path, ``autorun_py/fastcli.py``);
- the number of modules each of the two imports (``-X importtime``), which load
  does not change.

    .venv/bin/python benchmarks/startup.py [--base REV] [--this REV] [--calls 21]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def export(rev: str, dest: Path) -> Path:
    """The package and scripts of ``rev`` (``git archive``) under ``dest``."""
    dest.mkdir(parents=True)
    tar = dest.parent / f"{dest.name}.tar"
    with tar.open("wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev], stdout=fh, check=True)
    with tarfile.open(tar) as tf:
        tf.extractall(dest)  # noqa: S202 - our own repository's archive
    tar.unlink()
    return dest


def base_env(tmp: Path, tree: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        "[user]\n\tname = bench\n\temail = bench@autorun.invalid\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TMUX", "AUTORUN_"))}
    env.pop("CLAUDECODE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode reused, as in a real install
    env.update(
        {
            "HOME": str(home),
            "AUTORUN_HOME": str(home / ".autorun"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "AUTORUN_TMUX_SOCKET": f"autorun-bench-startup-{os.getpid()}",
            "AUTORUN_CLAUDE": PY,
            "AUTORUN_AGENT_ARGS": "-m autorun_py.standin",
            "PYTHONPATH": str(tree),
        }
    )
    return env


def stage_setup(tmp: Path, tree: Path) -> tuple[dict[str, str], Path]:
    """A run with stage 1 in progress in its own worktree, as launch leaves it."""
    env = base_env(tmp, tree)
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("bench\n")
    run(["git", "-C", str(repo), "init", "-q", "-b", "main"], env)
    run(["git", "-C", str(repo), "add", "-A"], env)
    run(["git", "-C", str(repo), "commit", "-q", "-m", "init"], env)
    plan = repo / "plan.md"
    plan.write_text(
        "# Bench\n\n## Stage 1: one\nDo one.\n\n## Stage 2: two\nDo two.\n",
    )
    out = run(
        [PY, "-m", "autorun_py", "orchestrate", str(plan), "--no-launch", "--no-monitor"]
        + ["--json"],
        env,
        repo,
    )
    orch = Path(json.loads(out)["orch_dir"])
    wt = Path(env["AUTORUN_HOME"]) / "worktrees" / orch.name / "stage-1"
    branch = f"autorun/{orch.name}/s1"
    run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", branch, str(wt), "HEAD"], env)
    status = orch / "status.json"
    data = json.loads(status.read_text())
    data["stages"]["1"].update({"status": "in_progress", "worktree": str(wt), "branch": branch})
    status.write_text(json.dumps(data, indent=2))
    return dict(env, AUTORUN_ORCH_DIR=str(orch), AUTORUN_STAGE="1"), wt


def modules(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """How many modules the call imports (``-X importtime``: one line each), a
    figure the machine's load does not change."""
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    return sum(1 for line in proc.stderr.splitlines() if line.startswith("import time:")) - 1


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    run(argv, env, cwd)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="main", help="the commit to compare with (default main)")
    ap.add_argument("--this", default=None, help="a commit instead of this checkout")
    ap.add_argument("--calls", type=int, default=21, help="calls per figure (median)")
    args = ap.parse_args()
    base_rev = run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], dict(os.environ))
    here_rev = run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.this or "HEAD"], dict(os.environ)
    )
    with tempfile.TemporaryDirectory(prefix="autorun-startup-") as td:
        tmp = Path(td)
        trees = {
            f"base {base_rev.strip()}": export(args.base, tmp / "base-tree"),
            f"this {here_rev.strip()}": export(args.this, tmp / "this-tree") if args.this else ROOT,
        }
        setups = {}
        for i, (label, tree) in enumerate(trees.items()):
            subprocess.run([PY, "-m", "compileall", "-q", str(tree / "autorun_py")], check=False)
            (tmp / f"t{i}").mkdir()
            setups[label] = stage_setup(tmp / f"t{i}", tree)
            where = run(
                [PY, "-c", "import autorun_py; print(autorun_py.__file__)"], setups[label][0], tmp
            )
            if not where.startswith(str(tree)):
                raise SystemExit(f"{label}: autorun_py comes from {where.strip()}, not {tree}")
        times: dict[str, dict[str, list[float]]] = {
            label: {"pass": [], "version": [], "phase": []} for label in trees
        }
        for _ in range(args.calls):
            for label in trees:  # interleaved: load hits both trees alike
                env, wt = setups[label]
                t = times[label]
                t["pass"].append(timed([PY, "-c", "pass"], env, tmp))
                t["version"].append(timed([PY, "-m", "autorun_py", "--version"], env, tmp))
                t["phase"].append(
                    timed([PY, "-m", "autorun_py", "phase", "implement", "started"], env, wt)
                )
        counts = {}
        for label in trees:
            env, wt = setups[label]
            counts[label] = (
                modules([PY, "-m", "autorun_py", "--version"], env, tmp),
                modules([PY, "-m", "autorun_py", "phase", "implement", "started"], env, wt),
            )
    print(f"{'tree':14} {'figure':34} {'median s':>9} {'x python -c pass':>17}")
    ratios: dict[str, dict[str, float]] = {}
    for label, t in times.items():
        floor = statistics.median(t["pass"])
        print(f"{label:14} {'python -c pass':34} {floor:9.4f} {1.0:17.2f}")
        for key, name in (("version", "autorun --version"), ("phase", "autorun phase ... started")):
            med = statistics.median(t[key])
            ratios.setdefault(key, {})[label] = med / floor
            print(f"{label:14} {name:34} {med:9.4f} {med / floor:17.2f}")
    for label, (version_n, phase_n) in counts.items():
        print(f"{label:14} modules imported: --version {version_n}, phase {phase_n}")
    labels = list(trees)
    for key, name in (("version", "autorun --version"), ("phase", "phase update")):
        b, h = ratios[key][labels[0]], ratios[key][labels[1]]
        print(f"{name}: this / base = {h / b:.2f} (in units of the interpreter start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
