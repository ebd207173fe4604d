"""The Markdown summary of a conflict resolution (for ``conflicts.md``) and the
conflict-marker check."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autorun_py import git as g

_DIFF_LINES = 40  # per side in a resolution summary


def conflict_resolution_summary(merge_worktree: Path, files: Sequence[str]) -> str:
    """Markdown for ``conflicts.md``: per file, what the resolution kept from
    each side (lines each side changed since the merge base that survive) and
    the diff of the resolution against each side.

    Works while the resolution is staged (``MERGE_HEAD`` present) and after it
    was committed in the merge worktree (``HEAD`` is the merge commit).
    """
    mw = Path(merge_worktree)
    has_merge_head = g.run_git(
        ["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False
    ).ok
    if has_merge_head:
        ours = g.git_out(["rev-parse", "HEAD"], mw)
        theirs = g.git_out(["rev-parse", "MERGE_HEAD"], mw)
        result_spec = ":"  # the index
    else:
        ours = g.git_out(["rev-parse", "HEAD^1"], mw)
        theirs = g.git_out(["rev-parse", "HEAD^2"], mw)
        result_spec = g.git_out(["rev-parse", "HEAD"], mw) + ":"
    mb_res = g.run_git(["merge-base", ours, theirs], mw, check=False)
    base = mb_res.stdout.strip() if mb_res.ok else ""
    short = {c: g.git_out(["rev-parse", "--short", c], mw) for c in (ours, theirs)}

    parts: list[str] = []
    for path in files:
        result = _blob_lines(mw, result_spec + path)
        base_lines = (_blob_lines(mw, f"{base}:{path}") if base else None) or []
        kept_set = set(result or [])
        lines = [f"#### `{path}`", ""]
        if result is None:
            lines.append("- resolution: the file was deleted")
        for label, side in (("base branch", ours), ("stage", theirs)):
            side_lines = _blob_lines(mw, f"{side}:{path}")
            if side_lines is None:
                lines.append(f"- {label} (`{short[side]}`): had deleted the file")
                continue
            changed = _changed_lines(base_lines, side_lines)
            kept = sum(1 for ln in changed if ln in kept_set)
            lines.append(
                f"- {label} (`{short[side]}`): kept {kept} of the {len(changed)} lines "
                "it changed since the merge base"
            )
        for label, side in (("base branch", ours), ("stage", theirs)):
            diff = _diff_against(mw, side, path, has_merge_head, result_spec)
            lines += ["", f"Resolution compared with the {label} side:", ""]
            if not diff:
                lines.append("(identical: this side was kept as is)")
            else:
                lines += ["```diff", *diff, "```"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + ("\n" if parts else "")


def _blob_lines(cwd: Path, spec: str) -> list[str] | None:
    res = g.run_git(["cat-file", "-p", spec], cwd, check=False)
    if not res.ok:
        return None
    return res.stdout.splitlines()


def _index_has_markers(mw: Path, path: str) -> bool:
    lines = _blob_lines(mw, ":" + path)
    if lines is None:
        return False
    for ln in lines:
        for marker in ("<<<<<<<", ">>>>>>>", "|||||||"):
            if ln.startswith(marker) and (len(ln) == 7 or ln[7] == " "):
                return True
    return False


def _changed_lines(base: list[str], side: list[str]) -> list[str]:
    """Lines ``side`` added relative to ``base`` (non-blank, in order)."""
    import difflib

    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=base, b=side, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            out += [ln for ln in side[j1:j2] if ln.strip()]
    return out


def _diff_against(mw: Path, side: str, path: str, staged: bool, result_spec: str) -> list[str]:
    if staged:
        args = ["diff", "--cached", "--no-color", "-U1", side, "--", path]
    else:
        args = ["diff", "--no-color", "-U1", side, result_spec.rstrip(":"), "--", path]
    out = g.run_git(args, mw, check=False).stdout.splitlines()
    body = [ln for ln in out if not ln.startswith(("diff --git", "index ", "--- ", "+++ "))]
    if len(body) > _DIFF_LINES:
        body = [*body[:_DIFF_LINES], f"... ({len(body) - _DIFF_LINES} more lines)"]
    return body
