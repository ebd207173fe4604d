"""How long the git merge engine takes, on a generated repository.

Builds a repository with ``--files`` tracked files (the user's checkout on the
base branch, with a few uncommitted edits in files no stage touches), then for
each of ``--stages`` stages (each editing ``--touch`` files of its own) times
``merge_stage`` (merge-tree + commit-tree + carrying the dirty checkout to the
new tip), and for ``--conflicts`` pairs of stages editing the same line times
setting up the conflict (merge worktree + ``git merge``) and ``continue_merge``
after a scripted resolution. Checks the user's edits are intact after every
merge. Prints figures measured in this run; everything lives in a temp dir.

    .venv/bin/python benchmarks/gitmerge.py [--files 2000] [--stages 10] [--conflicts 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autorun_py.gitmerge import MergeKind, continue_merge, merge_stage  # noqa: E402


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_files(cwd: Path, files: dict[str, str], msg: str) -> None:
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    git(cwd, "add", "--", *files)
    git(cwd, "commit", "-q", "-m", msg)


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--stages", type=int, default=10)
    ap.add_argument("--conflicts", type=int, default=3)
    ap.add_argument("--touch", type=int, default=5)
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        os.environ.update(
            AUTORUN_HOME=str(tmp / "home"),
            GIT_CONFIG_GLOBAL=str(tmp / "gitconfig"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@autorun.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@autorun.invalid",
        )
        repo = tmp / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit_files(
            repo,
            {f"src/d{i % 50}/f{i}.txt": f"file {i}\n" + "x\n" * 20 for i in range(opts.files)},
            "initial",
        )
        # the user's uncommitted work, in files no stage touches
        dirty = {repo / "src/d0/f0.txt": b"user edit\r\n", repo / "notes.md": b"untracked\n"}
        for path, data in dirty.items():
            path.write_bytes(data)

        clean: list[float] = []
        for s in range(opts.stages):
            wt = tmp / f"wt{s}"
            git(repo, "worktree", "add", "-q", "-b", f"stage-{s}", str(wt), "main")
            first = 1 + s * opts.touch
            commit_files(
                wt,
                {
                    f"src/d{i % 50}/f{i}.txt": f"stage {s}\n"
                    for i in range(first, first + opts.touch)
                },
                f"stage {s}",
            )
            t0 = time.perf_counter()
            out = merge_stage(
                repo,
                "main",
                f"stage-{s}",
                message=f"Merge stage {s}",
                merge_worktree=tmp / "mw" / str(s),
            )
            clean.append(time.perf_counter() - t0)
            assert out.kind is MergeKind.MERGED, out
            assert all(p.read_bytes() == d for p, d in dirty.items())

        setup: list[float] = []
        cont: list[float] = []
        target = "src/d1/f1.txt"  # edited by stage 0 already; each pair edits it again
        for c in range(opts.conflicts):
            names = [f"c{c}a", f"c{c}b"]
            for n in names:
                wt = tmp / f"wt-{n}"
                git(repo, "worktree", "add", "-q", "-b", n, str(wt), "main")
                commit_files(wt, {target: f"{n}\n"}, n)
            merge_stage(repo, "main", names[0], message="m", merge_worktree=tmp / "mw" / names[0])
            mw = tmp / "mw" / names[1]
            t0 = time.perf_counter()
            out = merge_stage(repo, "main", names[1], message="m", merge_worktree=mw)
            setup.append(time.perf_counter() - t0)
            assert out.kind is MergeKind.CONFLICT, out
            (mw / target).write_text(f"{names[0]} and {names[1]}\n")
            git(mw, "add", target)
            t0 = time.perf_counter()
            done = continue_merge(repo, "main", names[1], merge_worktree=mw, message="m")
            cont.append(time.perf_counter() - t0)
            assert done.kind is MergeKind.MERGED, done
            assert all(p.read_bytes() == d for p, d in dirty.items())

        print(f"repository: {opts.files} files; user checkout on main with uncommitted edits")
        print(f"clean merge ({opts.stages} stages x {opts.touch} files): {ms(clean)}")
        if setup:
            print(f"conflict set-up, merge worktree ({opts.conflicts}): {ms(setup)}")
            print(f"continue after resolution ({opts.conflicts}): {ms(cont)}")
        print("user's uncommitted edits intact after every merge: yes")


if __name__ == "__main__":
    main()
