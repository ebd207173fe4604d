"""The run report from a recorded run: durations, Gantt chart, graph, parallelism,
conflicts, restarts, and tokens and cost from Claude Code's own transcripts.

The fixture (tests/fixtures/transcripts, see record.py there) holds transcripts
that the real Claude Code CLI wrote against the fake Messages API, and the
status.json / events.jsonl of the three-stage run they belong to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autorun_py import transcripts
from autorun_py.report import build_report, dependency_graph, gantt, gantt_text, write_report
from autorun_py.transcripts import price_for, project_key
from tests.helpers import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "transcripts"
RUN = "fixture-run"


@pytest.fixture
def recorded(autorun_home: Path, isolated_home: Path) -> Path:
    """The recorded run under $AUTORUN_HOME, its transcripts under ~/.claude/projects."""
    orch = autorun_home / "orchestration" / RUN
    shutil.copytree(FIXTURE / "run", orch)
    shutil.copytree(FIXTURE / "projects", isolated_home / ".claude" / "projects")
    return orch


def _responses(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Straight from the JSONL: each response (message.id) with the largest value of
    each usage counter among its lines, and its model."""
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        for line in f.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") != "assistant":
                continue
            msg = entry["message"]
            cur = out.setdefault(msg["id"], {"model": msg["model"]})
            for key, value in msg["usage"].items():
                if isinstance(value, int):
                    cur[key] = max(cur.get(key, 0), value)
            one_hour = msg["usage"].get("cache_creation", {}).get("ephemeral_1h_input_tokens", 0)
            cur["1h"] = max(cur.get("1h", 0), one_hour)
    return out


def _stage_files(n: int) -> list[Path]:
    key = project_key(f"/tmp/autorun-fixture/worktrees/{RUN}/stage-{n}")
    return sorted((FIXTURE / "projects" / key).rglob("*.jsonl"))


def test_token_totals_equal_the_sums_in_the_fixture_transcripts(recorded: Path) -> None:
    md, js = write_report(recorded)
    data = json.loads(js.read_text())
    keys = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    grand = dict.fromkeys(keys, 0)
    raw_lines = 0
    for stage in data["stages"]:
        files = _stage_files(stage["number"])
        assert files, stage["number"]
        responses = _responses(files)
        raw_lines += sum(
            1 for f in files for ln in f.read_text().splitlines() if '"type":"assistant"' in ln
        )
        for key in keys:
            expected = sum(r.get(key, 0) for r in responses.values())
            assert stage["tokens"]["total"][key] == expected, (stage["number"], key)
            grand[key] += expected
        assert stage["tokens"]["total"]["responses"] == len(responses)
        assert sorted(stage["tokens"]["files"]) == sorted(
            str(
                Path(os.environ["HOME"])
                / ".claude"
                / "projects"
                / f.relative_to(FIXTURE / "projects")
            )
            for f in files
        )
    for key in keys:
        assert data["tokens"][key] == grand[key]
    assert data["tokens"]["responses"] < raw_lines  # a response spans several lines
    text = md.read_text()
    assert f"{grand['input_tokens']:,} / {grand['output_tokens']:,} / " in text


def test_cost_matches_claude_codes_own_cost_state(recorded: Path) -> None:
    """Claude Code writes its running cost (``cost-state``) into each transcript; for
    every session (its subagents included) the report's figures equal it."""
    report = build_report(recorded)
    for f in sorted((FIXTURE / "projects").glob("*/*.jsonl")):
        states = [json.loads(ln) for ln in f.read_text().splitlines() if '"cost-state"' in ln]
        last = states[-1]
        files = [f, *sorted((f.parent / f.stem).rglob("*.jsonl"))]
        usage = transcripts.read_usage(files)
        ((model, mu),) = last["modelUsage"].items()
        assert usage.total.input_tokens == mu["inputTokens"]
        assert usage.total.output_tokens == mu["outputTokens"]
        assert usage.total.cache_read_input_tokens == mu["cacheReadInputTokens"]
        assert usage.total.cache_creation_input_tokens == mu["cacheCreationInputTokens"]
        assert usage.total.cache_creation_1h_tokens == mu["cacheCreationEphemeral1hInputTokens"]
        assert usage.total.cost_usd == pytest.approx(last["totalCostUSD"], abs=1e-9)
        assert list(usage.by_model) == [model]
    assert report.total.cost_usd == pytest.approx(
        sum(s.usage.total.cost_usd for s in report.stages), abs=1e-12
    )
    assert report.total.cost_usd > 1.0 and not report.unpriced_models


def test_report_durations_parallelism_graph_and_counters(recorded: Path) -> None:
    status = json.loads((recorded / "status.json").read_text())
    report = build_report(recorded)
    by = {s.number: s for s in report.stages}

    def secs(a: str, b: str) -> float:
        from autorun_py.report import _ts

        ta, tb = _ts(a), _ts(b)
        assert ta and tb
        return (tb - ta).total_seconds()

    for n, st in status["stages"].items():
        assert by[int(n)].seconds == secs(st["started_at"], st["completed_at"])
        for ph in by[int(n)].phases:
            raw = st["phases"][ph.name]
            assert ph.seconds == secs(raw["started_at"], raw["completed_at"])
    wall = secs(status["created_at"], status["completed_at"])
    busy = sum(s.seconds or 0 for s in report.stages)
    assert report.wall_seconds == wall and report.busy_seconds == busy
    assert report.parallelism == pytest.approx(busy / wall)
    # 1 then (2 | 3): no schedule beats stage 1 plus the longer of 2 and 3.
    bound = by[1].seconds + max(by[2].seconds, by[3].seconds)  # type: ignore[operator]
    assert report.bound_seconds == bound
    assert report.bound_parallelism == pytest.approx(busy / bound)
    longer = 2 if by[2].seconds >= by[3].seconds else 3  # type: ignore[operator]
    assert report.critical_path == [1, longer]
    assert by[1].restarts == 1 and by[3].conflicts == 1
    assert by[3].conflict_files == ["storage/schema.py"]
    assert by[1].git is None  # the recorded project is not on this machine
    md = write_report(recorded)[0].read_text()
    assert "## Merge conflicts" in md and "`storage/schema.py`" in md
    assert md.count("```mermaid") == 2


def _gantt_tasks(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines()[4:]:
        line = line.strip()
        if line.startswith("section "):
            continue
        name, sep, meta = line.partition(" :")
        assert sep, line
        out.append((name, [m.strip() for m in meta.split(",")]))
    return out


def test_gantt_is_well_formed_mermaid(recorded: Path) -> None:
    report = build_report(recorded)
    text = gantt(report)
    lines = text.splitlines()
    assert lines[:4] == [
        "gantt",
        f"    title {RUN} (UTC)",
        "    dateFormat YYYY-MM-DDTHH:mm:ss",
        "    axisFormat %H:%M:%S",
    ]
    sections = [ln.strip() for ln in lines if ln.strip().startswith("section ")]
    assert sections == [
        "section Stage 1 Core model",
        'section Stage 2 Parser tokens & tags 100 "quoted"',  # no ':', '#', ';', '%'
        "section Stage 3 Storage",
    ]
    tasks = _gantt_tasks(text)
    ids = [meta[-3] for _, meta in tasks]
    assert len(ids) == len(set(ids))
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
    for name, meta in tasks:
        assert not set(name) & set(":#;%")
        assert stamp.match(meta[-2]) and stamp.match(meta[-1]) and meta[-2] < meta[-1]
        assert set(meta[:-3]) <= {"done", "active", "crit"}
    bars = {meta[-3]: meta for _, meta in tasks if re.match(r"^s\d+$", meta[-3])}
    assert bars["s1"][:2] == ["done", "crit"] and bars["s3"][:1] == ["done"]
    assert "crit" not in bars["s3"]
    graph = dependency_graph(report)
    assert "    s1 --> s2" in graph and "    s1 --> s3" in graph
    assert "class s1,s2 crit" in graph or "class s1,s3 crit" in graph
    assert gantt_text("a: b # c; 100%% d\n e") == "a b c 100 d e"


MERMAID_CHECK = r"""
import { readFileSync } from "fs";
import { createRequire } from "module";
const require = createRequire(process.argv[2] + "/");
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
const w = dom.window;
globalThis.window = w; globalThis.document = w.document;
for (const k of ["Element", "HTMLElement", "SVGElement", "Node", "navigator", "DOMParser",
                 "MutationObserver", "getComputedStyle"]) { try { globalThis[k] = w[k]; } catch {} }
globalThis.CSSStyleSheet = class { replaceSync() {} insertRule() {} get cssRules() { return []; } };
// jsdom lays nothing out: give text a size so the renderers can place it.
w.SVGElement.prototype.getBBox = function () {
  return { x: 0, y: 0, width: (this.textContent || "").length * 7, height: 14 };
};
w.SVGElement.prototype.getComputedTextLength = function () {
  return (this.textContent || "").length * 7;
};
const { default: mermaid } = await import(require.resolve("mermaid"));
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
const md = readFileSync(process.argv[3], "utf8");
const out = [];
let i = 0;
for (const m of md.matchAll(/```mermaid\n([\s\S]*?)```/g)) {
  const d = await mermaid.mermaidAPI.getDiagramFromText(m[1]);
  const info = { type: d.type };
  if (d.type === "gantt") {
    info.tasks = d.db.getTasks().map((t) => ({ id: t.id, section: t.section,
      start: t.startTime.toISOString(), end: t.endTime.toISOString(), crit: !!t.crit }));
  }
  const svg = (await mermaid.render("d" + i++, m[1])).svg;
  info.svg = svg;
  out.push(info);
}
console.log(JSON.stringify(out));
"""


def _mermaid_modules() -> Path:
    """node_modules with ``mermaid`` and ``jsdom`` ($AUTORUN_TEST_MERMAID), else skip."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    env = os.environ.get("AUTORUN_TEST_MERMAID")
    local = Path(__file__).resolve().parent.parent / ".node" / "mermaid" / "node_modules"
    if not env and local.is_dir():  # installed there by .ci/run
        env = str(local)
    if not env:
        if os.environ.get("CI"):
            pytest.fail("CI must install mermaid and jsdom into .node/mermaid (see .ci/run)")
        pytest.skip(
            "set AUTORUN_TEST_MERMAID to a node_modules holding mermaid and jsdom "
            "(npm install --prefix DIR mermaid jsdom; AUTORUN_TEST_MERMAID=DIR/node_modules)"
        )
    mods = Path(env)
    if not (mods / "mermaid").is_dir() or not (mods / "jsdom").is_dir():
        pytest.skip(f"no mermaid and jsdom in {mods}")
    return mods


def test_mermaid_parses_and_renders_the_report(recorded: Path, tmp_path: Path) -> None:
    mods = _mermaid_modules()
    md, _ = write_report(recorded)
    script = tmp_path / "check.mjs"
    script.write_text(MERMAID_CHECK)
    proc = subprocess.run(
        ["node", str(script), str(mods), str(md)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    gantt_info, graph_info = json.loads(proc.stdout)
    assert gantt_info["type"] == "gantt" and graph_info["type"].startswith("flowchart")
    report = build_report(recorded)
    expected = {}
    for s in report.stages:
        expected[f"s{s.number}"] = (s.started_at, s.ended_at)
        for ph in s.phases:
            expected[f"s{s.number}{ph.name.replace('_', '')}"] = (ph.started_at, ph.completed_at)
    got = {t["id"]: (t["start"], t["end"]) for t in gantt_info["tasks"]}
    assert got == {
        k: (a.replace("Z", ".000Z"), b.replace("Z", ".000Z"))  # type: ignore[union-attr]
        for k, (a, b) in expected.items()
    }
    assert [t["id"] for t in gantt_info["tasks"] if t["crit"]] == [
        f"s{n}" for n in report.critical_path
    ]
    # Every task is drawn as a bar, and the odd stage name reaches the graph intact.
    bars = re.findall(r'<rect[^>]*class="task[ "]', gantt_info["svg"])
    assert len(bars) == len(expected)
    assert 'Parser: tokens &amp; #tags; 100% "quoted"' in graph_info["svg"]


# --------------------------------------------------------------------------- locations & prices


def test_project_key_matches_claude_code() -> None:
    # Directory names the real CLI (2.1.330) created for these working directories.
    assert project_key("/tmp/rec/run/wt/stage-1") == "-tmp-rec-run-wt-stage-1"
    long = "/tmp/rec/run/" + "w" * 120 + "/stage-1 Über (x)/" + "y" * 60
    assert project_key(long) == (
        "-tmp-rec-run-" + "w" * 120 + "-stage-1--ber--x--" + "y" * 49 + "-1ojojk"
    )
    assert project_key("/a/😀b") == "-a---b"  # two UTF-16 units, two dashes
    key = project_key(f"/tmp/autorun-fixture/worktrees/{RUN}/stage-2")
    assert (FIXTURE / "projects" / key).is_dir()


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("claude-opus-4-5-20251101", 5.0, 25.0),
        ("claude-opus-4-1-20250805", 15.0, 75.0),
        ("claude-opus-4-20250514", 15.0, 75.0),
        ("claude-sonnet-4-5-20250929", 3.0, 15.0),
        ("claude-sonnet-4-20250514", 3.0, 15.0),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0, 15.0),
        ("claude-haiku-4-5-20251001", 1.0, 5.0),
        ("claude-3-5-haiku-20241022", 0.8, 4.0),
    ],
)
def test_prices_by_model_prefix(model: str, input_price: float, output_price: float) -> None:
    price = price_for(model)
    assert price is not None
    assert (price.input, price.output) == (input_price, output_price)
    assert price.cache_read == pytest.approx(price.input / 10)


def test_unknown_models_are_counted_not_priced(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    lines = [
        {
            "type": "assistant",
            "message": {
                "id": "m1",
                "model": "gpt-9",
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
        },
        {
            "type": "assistant",
            "message": {
                "id": "m2",
                "model": "<synthetic>",
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "user", "message": {"role": "user", "content": "hi"}},
        "not json",
    ]
    f.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    usage = transcripts.read_usage([f])
    assert usage.total.input_tokens == 10 and usage.total.responses == 1
    assert usage.total.cost_usd == 0 and usage.unpriced_models == ["gpt-9"]


def test_report_cli(recorded: Path, tmp_path: Path, autorun_home: Path) -> None:
    proc = run_cli(["report", RUN], tmp_path, check=True)
    assert f"Report: {autorun_home / 'reports' / (RUN + '.md')}" in proc.stdout
    data = json.loads(run_cli(["report", RUN, "--json"], tmp_path, check=True).stdout)
    assert data["run"] == RUN and len(data["stages"]) == 3
    assert data["gantt"].startswith("gantt\n")
    bad = run_cli(["report", "no-such-run"], tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("autorun: error: no orchestration")


def test_a_failed_runs_report_says_why(repo: Path) -> None:
    from autorun_py.plan import load_plan
    from autorun_py.report import render_markdown
    from autorun_py.rundir import create_orchestration
    from autorun_py.state import IN_PROGRESS, StatusStore, fail_stage, transition
    from tests.helpers import write_plan

    plan = write_plan(repo, [(1, "Schema", []), (2, "API", [1]), (3, "Docs", [])])
    orch = Path(create_orchestration(load_plan(plan), repo).orch_dir)
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
        fail_stage(txn, 1, "pytest: 3 tests failed in tests/test_schema.py")
    report = build_report(orch)
    md = render_markdown(report)
    failures = md.split("## Failures\n", 1)[1].split("\n## ", 1)[0]
    assert "- Stage 1 (Schema) **failed**: pytest: 3 tests failed in tests/test_schema.py" in (
        failures
    )
    assert "- Stage 2 (API) was blocked by the failure of stage 1" in failures
    assert "Stage 3" not in failures  # still pending: not a failure
    by_number = {s["number"]: s for s in report.to_json()["stages"]}
    assert by_number[2]["blocked_by"] == 1
    assert by_number[1]["failure"].startswith("pytest: 3 tests failed")


def test_the_report_shows_where_each_stage_ran(recorded: Path, tmp_path: Path) -> None:
    """A run mixing launchers: each stage's launcher, the sessions that ran it and how
    to attach, in the Markdown and the JSON; a run from before launchers reads as tmux."""
    from autorun_py.report import render_markdown

    plain = {s["number"]: s for s in build_report(recorded).to_json()["stages"]}
    assert plain[1]["launcher"] == "tmux" and plain[1]["sessions"] == ["fixture_stage-1"]
    status = recorded / "status.json"
    raw = json.loads(status.read_text())
    raw["launcher"] = "tmux"
    raw["launchers"] = [
        {"name": "tmux", "max_parallel": 2},
        {"name": "background", "max_parallel": 4},
    ]
    st2 = raw["stages"]["2"]
    st2.update(launcher="background", launcher_handle="1d45bc42")
    st2["launcher_handles"] = ["0a1b2c3d", "1d45bc42"]
    raw["stages"]["1"]["launcher"] = "tmux"
    status.write_text(json.dumps(raw))
    report = build_report(recorded)
    by = {s["number"]: s for s in report.to_json()["stages"]}
    assert by[2]["launcher"] == "background"
    assert by[2]["sessions"] == ["0a1b2c3d", "1d45bc42"]
    assert by[2]["attach"] == "claude attach 1d45bc42"
    assert by[1]["launcher"] == "tmux" and "attach -t fixture_stage-1" in by[1]["attach"]
    assert report.to_json()["launchers"] == raw["launchers"]
    md = render_markdown(report)
    where = md.split("## Where each stage ran\n", 1)[1].split("\n## ", 1)[0]
    assert "Launchers: tmux (at most 2), background (at most 4)." in where
    row2 = next(line for line in where.splitlines() if line.startswith("| 2 |"))
    assert "| background | `0a1b2c3d`, `1d45bc42` | `claude attach 1d45bc42` |" in row2, row2
