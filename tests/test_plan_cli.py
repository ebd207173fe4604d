"""`autorun plan check` / `autorun plan show`: output, exit codes, start-up weight."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autorun_py.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "plans"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def autorun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autorun_py", *args], capture_output=True, text=True, check=False
    )


def test_check_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "check", str(FIXTURES / "waves.md"))
    assert code == 0
    assert "Plan:          waves" in out
    assert "Stage 4: Checker  (wave 3; depends on: 3)" in out
    assert "  Wave 1: stage(s) 1, 2" in out
    assert "Critical path: 1 -> 3 -> 4 -> 5 (4 stage(s))" in out
    # Warnings go to stderr, naming the file and line.
    assert f"autorun: warning: {FIXTURES / 'waves.md'}: line 22: stage 4 is declared" in err


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "2026-02-20-wave2-token-design-audit.md"
    code, out, err = run(capsys, "plan", "check", str(path), "--json")
    assert code == 0 and err == ""
    data = json.loads(out)  # exactly one object
    assert data["plan_name"] == "2026-02-20-wave2-token-design-audit"
    assert data["project_slug"] == "token-audit"
    assert data["waves"] == [[1], [2], [3]]
    assert data["critical_path"] == [1, 2, 3]
    assert data["stages"][0] == {
        "number": 1,
        "name": "Inventory tokens",
        "depends_on": [],
        "scope": "Collect every design token from `src/tokens/`.",
    }
    assert data["warnings"] == []


def test_check_json_invalid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.md"
    path.write_text("## Stage 1: A\nDepends on: Stage 2\n\n## Stage 2: B\nDepends on: Stage 1\n")
    code, out, err = run(capsys, "plan", "check", str(path), "--json")
    assert code == 1
    assert json.loads(out) == {
        "errors": [
            {
                "line": 2,
                "message": "dependency cycle: 1 -> 2 -> 1 (each stage depends on the next: "
                "1 -> 2 on line 2, 2 -> 1 on line 5)",
            }
        ]
    }


def test_check_invalid_plan_human(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.md"
    path.write_text("## Stage 1: A\nDepends on: Stage 1\n\n## Stage 1: B\nDepends on: none\n")
    code, out, err = run(capsys, "plan", "check", str(path))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"autorun: error: {path}:2: stage 1 depends on itself",
        f"autorun: error: {path}:4: duplicate stage number 1 (first on line 1)",
    ]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "check")
    assert code == 2 and "Missing argument 'PLAN'" in err
    code, _, err = run(capsys, "plan", "show", str(FIXTURES / "waves.md"), "--format", "svg")
    assert code == 2 and "--format" in err
    code, _, _ = run(capsys, "plan", "check", str(FIXTURES / "waves.md"), "--bogus")
    assert code == 2


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "check", str(tmp_path / "nope.md"))
    assert code == 1 and err == f"autorun: error: {tmp_path / 'nope.md'}: no such file\n"
    code, out, _ = run(capsys, "plan", "check", str(tmp_path / "nope.md"), "--json")
    assert code == 1 and json.loads(out)["errors"][0]["line"] is None


def test_real_process_binary_file_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "blob.md"
    path.write_bytes(bytes(range(256)) * 4)
    proc = autorun("plan", "check", str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"autorun: error: {path}:")
    assert "Traceback" not in proc.stderr
    proc = autorun("plan", "check", str(path), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["errors"][0]["message"].startswith("not UTF-8 text")


def mermaid_labels(text: str) -> dict[str, str]:
    out = {}
    for node, label in re.findall(r'^\s+(s\d+)\["([^"]*)"\]$', text, re.M):
        label = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), label)
        out[node] = re.sub(r"#(\w+);", lambda m: html.unescape(f"&{m.group(1)};"), label)
    return out


def test_show_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "show", str(FIXTURES / "unicode_shell.md"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    labels = mermaid_labels(out)
    assert labels == {
        "s1": "Stage 1: Données $(rm -rf ~) `id` ; echo \"pwned\" | cat & 'quote'",
        "s2": "Stage 2: 日本語のステージ — «ünïcode» \\ back\\slash",
    }
    assert "    s1 ==> s2" in lines  # critical-path edge
    assert "    class s1,s2 critical" in lines


def test_show_mermaid_marks_only_critical_edges(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "show", str(FIXTURES / "separators.md"), "--format", "mermaid"
    )
    assert code == 0
    edges = re.findall(r"^\s+s(\d+) (-->|==>) s(\d+)$", out, re.M)
    thick = sorted((int(a), int(b)) for a, arrow, b in edges if arrow == "==>")
    assert thick == [(1, 2), (2, 3), (3, 5), (5, 9)]
    assert len(edges) == 10


def dot_strings(text: str) -> list[str]:
    """Every quoted string of a DOT file, unescaped; fails on a malformed string."""
    strings = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text, re.S):
        strings.append(re.sub(r"\\(.)", r"\1", m.group(1), flags=re.S))
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text, flags=re.S)
    assert '"' not in outside.replace('""', "")
    return strings


def test_show_dot(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "show", str(FIXTURES / "unicode_shell.md"), "--format", "dot"
    )
    assert code == 0
    assert out.startswith('digraph "unicode-shell" {\n') and out.rstrip().endswith("}")
    assert out.count("{") == out.count("}") == 1
    strings = dot_strings(out)
    assert "Stage 1: Données $(rm -rf ~) `id` ; echo \"pwned\" | cat & 'quote'" in strings
    assert "Stage 2: 日本語のステージ — «ünïcode» \\ back\\slash" in strings
    assert "    s1 -> s2 [penwidth=2, color=red];" in out.splitlines()


def test_help_lists_plan_and_is_fast_to_import() -> None:
    proc = autorun("--help")
    assert proc.returncode == 0 and "plan" in proc.stdout
    proc = autorun("plan", "--help")
    assert proc.returncode == 0 and "check" in proc.stdout and "show" in proc.stdout


def test_plan_check_imports_nothing_heavy() -> None:
    script = (
        "import sys\n"
        "from autorun_py.cli import main\n"
        "try:\n"
        f"    main(['plan', 'check', {str(FIXTURES / 'waves.md')!r}, '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('watchdog', 'filelock', 'autorun_py.git', 'autorun_py.tmux', 'asyncio')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "[]", last


def test_show_invalid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.md"
    path.write_text("## Stage 1: A\nDepends on: Stage 4\n")
    code, out, err = run(capsys, "plan", "show", str(path), "--format", "dot")
    assert code == 1 and out == ""
    assert err == f"autorun: error: {path}:2: stage 1 depends on stage 4, which does not exist\n"


def test_a_dependency_read_from_a_name_is_said_by_check_and_orchestrate(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import run_cli

    path = repo / "plan.md"
    path.write_text(
        "## Stage 1: Core API\nDepends on: none\n\n## Stage 2: UI\nDepends on: core API\n"
    )
    code, out, err = run(capsys, "plan", "check", str(path))
    assert code == 0 and "depends on: 1" in out
    said = f"autorun: warning: {path}: line 5: stage 2: dependency 'core API' read as stage 1"
    assert said in err
    proc = run_cli(["orchestrate", str(path), "--dry-run"], repo)
    assert proc.returncode == 0, proc.stderr
    assert said in proc.stderr
    proc = run_cli(["orchestrate", str(path), "--dry-run", "--json"], repo)
    assert any("read as stage 1" in w for w in json.loads(proc.stdout)["warnings"])
