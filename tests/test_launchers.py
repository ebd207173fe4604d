"""The launcher interface: chosen per run and kept in status.json, the background
launcher's argv (no secret in it), and the tmux launcher as the default whose
sessions the status view says how to attach to. The background launcher's real
behaviour is tests/e2e/test_background_e2e.py (the real Claude Code CLI)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from autorun_py import launchers
from autorun_py.config import load_config
from autorun_py.errors import AutorunError
from autorun_py.launchers.background import bg_argv
from tests.helpers import cli_json, run_cli, standin_env, wait_finished, write_plan


def test_bg_argv_keeps_the_agent_settings_and_passes_only_autorun_variables() -> None:
    argv = [
        "claude",
        "--plugin-dir",
        "/p",
        "--model",
        "sonnet",
        "--permission-mode",
        "dontAsk",
        "--session-id",
        "1234",
        "/autorun:start /x/stage-1-context.md",
    ]
    env = {
        "AUTORUN_ORCH_DIR": "/o",
        "AUTORUN_STAGE": "1",
        "ANTHROPIC_API_KEY": "sk-secret",
        "PATH": "/bin",
        "IS_SANDBOX": "1",
    }
    out = bg_argv(argv, "slug_stage-1-s1", env)
    assert out[:4] == ["claude", "--bg", "--name", "slug_stage-1-s1"]
    settings = json.loads(out[out.index("--settings") + 1])
    assert settings == {"env": {"AUTORUN_ORCH_DIR": "/o", "AUTORUN_STAGE": "1", "IS_SANDBOX": "1"}}
    assert "sk-secret" not in " ".join(out)
    assert "--session-id" not in out and "1234" not in out  # the daemon picks the id
    for flag, value in (("--plugin-dir", "/p"), ("--model", "sonnet")):
        assert out[out.index(flag) + 1] == value
    assert out[out.index("--permission-mode") + 1] == "dontAsk"
    assert out[-1] == "/autorun:start /x/stage-1-context.md"


def test_launcher_from_config_and_environment_and_a_bad_name_is_one_error(
    autorun_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(os.environ).launcher == "tmux"
    autorun_home.mkdir(parents=True, exist_ok=True)
    (autorun_home / "config.json").write_text('{"launcher": "background"}')
    assert load_config(os.environ).launcher == "background"
    monkeypatch.setenv("AUTORUN_LAUNCHER", "tmux")
    assert load_config(os.environ).launcher == "tmux"
    monkeypatch.setenv("AUTORUN_LAUNCHER", "carrier-pigeon")
    with pytest.raises(AutorunError, match="launcher must be one of tmux, background"):
        load_config(os.environ)
    with pytest.raises(AutorunError, match="unknown launcher"):
        launchers.check_name("carrier-pigeon")


def test_orchestrate_records_the_launcher_and_rejects_an_unknown_one(repo: Path) -> None:
    write_plan(repo, [(1, "Alpha", [])])
    out = cli_json(
        ["orchestrate", "master_plan.md", "--launcher", "background", "--no-launch"], repo
    )
    raw = json.loads(Path(out["status_file"]).read_text())
    assert raw["launcher"] == "background"
    assert cli_json(["status", Path(out["orch_dir"]).name], repo)["launcher"] == "background"
    bad = run_cli(["orchestrate", "master_plan.md", "--launcher", "nope"], repo)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_tmux_is_the_default_and_the_status_view_says_how_to_attach(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch, delay="3-3")
    write_plan(repo, [(1, "Alpha", [])])
    out = cli_json(["orchestrate", "master_plan.md", "--no-monitor"], repo)
    orch = Path(out["orch_dir"])
    assert json.loads((orch / "status.json").read_text())["launcher"] == "tmux"
    view = cli_json(["status", orch.name], repo)
    row = view["stages"][0]
    assert view["launcher"] == "tmux"
    assert row["attach"] == f"tmux -L {tmux_socket} attach -t {row['session']}"
    assert row["session_alive"] is True
    text = run_cli(["status", orch.name], repo).stdout
    assert f"attach -t {row['session']}" in text
    assert wait_finished(orch)["status"] == "completed"


# ------------------------------------------------------------- per-launcher capacity


def test_a_launcher_spec_names_launchers_in_order_with_caps_and_refuses_bad_ones() -> None:
    caps = launchers.parse_spec("tmux=2, background=4")
    assert caps == [launchers.LauncherCap("tmux", 2), launchers.LauncherCap("background", 4)]
    assert launchers.spec_text(caps) == "tmux=2,background=4"
    assert launchers.parse_spec("background") == [launchers.LauncherCap("background", None)]
    assert launchers.parse_spec("tmux=1,background")[1].max_parallel is None
    for bad, why in (
        ("tmux=0", "positive number"),
        ("tmux=two", "positive number"),
        ("tmux,tmux=2", "named twice"),
        ("", "no launcher named"),
        ("tmux=2,pigeon=1", "unknown launcher 'pigeon'"),
    ):
        with pytest.raises(AutorunError, match=why):
            launchers.parse_spec(bad)
    # the config's object and list forms
    assert launchers.from_value({"tmux": 2, "background": None}, "x") == [
        launchers.LauncherCap("tmux", 2),
        launchers.LauncherCap("background", None),
    ]
    assert launchers.from_value([{"name": "background", "max_parallel": 3}], "x") == [
        launchers.LauncherCap("background", 3)
    ]
    with pytest.raises(AutorunError, match=r"x\[0\]"):
        launchers.from_value([7], "x")


def test_each_stage_goes_to_the_first_launcher_with_a_free_slot() -> None:
    caps = launchers.parse_spec("tmux=2,background=3")
    assert launchers.assign([5, 1, 2, 3, 4, 6], caps, {}) == {
        5: "tmux",
        1: "tmux",
        2: "background",
        3: "background",
        4: "background",
    }  # stage 6 finds no slot: it waits
    assert launchers.assign([1, 2], caps, {"tmux": 2, "background": 2}) == {1: "background"}
    uncapped = launchers.parse_spec("tmux=1,background")
    assert launchers.assign([1, 2, 3], uncapped, {"tmux": 0}) == {
        1: "tmux",
        2: "background",
        3: "background",
    }


def test_config_launchers_object_and_environment_spec(
    autorun_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    autorun_home.mkdir(parents=True, exist_ok=True)
    cfg = autorun_home / "config.json"
    cfg.write_text('{"launchers": {"tmux": 2, "background": 4}}')
    assert load_config(os.environ).launcher == "tmux=2,background=4"
    cfg.write_text('{"launcher": "background=3"}')
    assert load_config(os.environ).launcher == "background=3"
    cfg.write_text('{"launchers": {"tmux": 0}}')
    with pytest.raises(AutorunError, match="positive number") as err:
        load_config(os.environ)
    assert str(cfg) in str(err.value)
    monkeypatch.setenv("AUTORUN_LAUNCHER", "background=1,tmux")
    assert load_config(os.environ).launcher == "background=1,tmux"


def test_dry_run_and_summary_show_the_launchers_their_caps_and_each_stages_launcher(
    repo: Path,
) -> None:
    write_plan(repo, [(n, f"S{n}", []) for n in range(1, 5)])
    args = ["orchestrate", "master_plan.md", "--launcher", "tmux=1,background=2", "--dry-run"]
    out = cli_json(args, repo)
    assert out["launched"] == [1, 2, 3]  # 4 waits: the total is the caps' sum, 3
    assert out["max_parallel"] == 3
    assert out["launchers"] == [
        {"name": "tmux", "max_parallel": 1},
        {"name": "background", "max_parallel": 2},
    ]
    assert out["placed"] == {"1": "tmux", "2": "background", "3": "background"}
    text = run_cli(args, repo, check=True).stdout
    assert "Launchers:     tmux (at most 1), background (at most 2)" in text, text
    assert "at most 3 at once (the sum of the launchers' caps)" in text, text
    placed = re.findall(r"Session:  \S+_stage-(\d+)\n    Launcher: (\S+)", text)
    assert placed == [("1", "tmux"), ("2", "background"), ("3", "background")], text
    # --max-parallel still caps the total
    capped = cli_json([*args, "--max-parallel", "2"], repo)
    assert capped["launched"] == [1, 2]
    bad = run_cli(["orchestrate", "master_plan.md", "--launcher", "tmux=0", "--dry-run"], repo)
    assert bad.returncode == 2 and "positive number" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_claim_places_stages_per_launcher_records_it_and_status_shows_it(repo: Path) -> None:
    from autorun_py.launch import claim
    from autorun_py.state import COMPLETED, StatusStore, transition

    write_plan(repo, [(1, "A", []), (2, "B", []), (3, "C", []), (4, "D", [])])
    out = cli_json(
        ["orchestrate", "master_plan.md", "--launcher", "tmux=1,background=2", "--no-launch"],
        repo,
    )
    orch = Path(out["orch_dir"])
    raw = json.loads((orch / "status.json").read_text())
    assert raw["launcher"] == "tmux"  # what an older reader knows: the first one
    assert raw["launchers"] == [
        {"name": "tmux", "max_parallel": 1},
        {"name": "background", "max_parallel": 2},
    ]
    assert raw["max_parallel"] == 3
    store = StatusStore(orch)
    with store.transaction() as txn:
        assert claim(txn) == [1, 2, 3]
    raw = json.loads((orch / "status.json").read_text())
    placed = {n: raw["stages"][n].get("launcher") for n in "1234"}
    assert placed == {"1": "tmux", "2": "background", "3": "background", "4": None}
    with store.transaction() as txn:
        transition(txn, 2, COMPLETED)  # a background slot frees up
        assert claim(txn) == [4]
        assert txn.state.stages[4].extra["launcher"] == "background"
    with store.transaction() as txn:
        transition(txn, 1, COMPLETED)
        assert claim(txn) == []  # nothing left to place
    view = cli_json(["status", orch.name], repo)
    assert view["launchers"] == [
        {"name": "tmux", "max_parallel": 1, "running": 0},
        {"name": "background", "max_parallel": 2, "running": 2},  # stages 3 and 4
    ]
    rows = {r["number"]: r for r in view["stages"]}
    assert rows[1]["launcher"] == "tmux" and rows[4]["launcher"] == "background"
    text = run_cli(["status", orch.name], repo, check=True).stdout
    assert "launchers: tmux (at most 1), background (at most 2, 2 running)" in text, text


def test_a_stage_without_a_launcher_is_the_runs_and_a_bad_one_is_one_line(repo: Path) -> None:
    write_plan(repo, [(1, "A", [])])
    out = cli_json(
        ["orchestrate", "master_plan.md", "--launcher", "background", "--no-launch"], repo
    )
    orch = Path(out["orch_dir"])
    raw = json.loads((orch / "status.json").read_text())
    assert "launchers" not in raw  # one launcher without a cap: as before
    from autorun_py.state import StatusStore

    state = StatusStore(orch).read()
    assert launchers.stage_launcher_name(state, state.stages[1]) == "background"
    raw["launchers"] = [{"name": "tmux", "max_parallel": "lots"}]
    (orch / "status.json").write_text(json.dumps(raw))
    bad = run_cli(["status", orch.name], repo)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "launchers in status.json" in bad.stderr and len(bad.stderr.splitlines()) == 1
    before = (orch / "status.json").read_bytes()
    for args in (["launch-ready", orch.name], ["resume", orch.name, "--no-monitor"]):
        bad = run_cli(args, repo)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, (args, bad.stderr)
        assert "launchers in status.json" in bad.stderr, (args, bad.stderr)
        assert (orch / "status.json").read_bytes() == before, args  # no change
    del raw["launchers"]
    raw["stages"]["1"]["launcher"] = 5
    (orch / "status.json").write_text(json.dumps(raw))
    bad = run_cli(["status", orch.name], repo)
    assert bad.returncode != 0 and "stages.1.launcher" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_status_view_shows_what_a_stage_waits_for_when_its_launcher_knows(
    repo: Path,
) -> None:
    """tmux: what the monitor and the hooks recorded (permission, limit, stall), in
    ``waiting_for``; the background launcher reads ``claude agents``' waitingFor."""
    from autorun_py.launch import claim
    from autorun_py.state import StatusStore

    write_plan(repo, [(1, "A", [])])
    out = cli_json(["orchestrate", "master_plan.md", "--no-launch"], repo)
    orch = Path(out["orch_dir"])
    store = StatusStore(orch)
    with store.transaction() as txn:
        assert claim(txn) == [1]
    assert cli_json(["status", orch.name], repo)["stages"][0]["waiting_for"] is None
    with store.transaction() as txn:
        txn.state.monitor.setdefault("stages", {})["1"] = {
            "limit": {"kind": "usage limit", "until": "2026-12-01T13:00:00Z"}
        }
    row = cli_json(["status", orch.name], repo)["stages"][0]
    assert row["waiting_for"] == "usage limit until 2026-12-01T13:00:00Z"
    with store.transaction() as txn:
        txn.state.monitor["stages"]["1"] = {"attention": {"tool": "Bash", "detail": "rm -rf x"}}
    row = cli_json(["status", orch.name], repo)["stages"][0]
    assert row["waiting_for"] == "permission for Bash" and row["launcher"] == "tmux"
    from autorun_py.launchers.background import row_waiting

    row_of = {"id": "1d45bc42", "status": "waiting", "waitingFor": "input needed"}
    assert row_waiting(row_of) == "input needed (claude agents)"
    assert "blocked" in str(row_waiting({"id": "1d45bc42", "state": "blocked"}))
    assert row_waiting({"id": "1d45bc42", "state": "working"}) is None
    assert row_waiting(None) is None


def test_a_launchers_cap_holds_through_a_whole_run(
    repo: Path, tmp_path: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--launcher tmux=1`` under a total cap of 3, three independent stages (the
    stand-in agent): one stage at a time, each next one started by the merge that
    freed the launcher's slot."""
    from tests.helpers import read_events

    standin_env(monkeypatch, delay="0.05-0.2")
    write_plan(repo, [(1, "A", []), (2, "B", []), (3, "C", [])])
    args = ["orchestrate", "master_plan.md", "--launcher", "tmux=1", "--max-parallel", "3"]
    out = cli_json(args, repo)
    assert out["launched"] == [1] and out["max_parallel"] == 3  # the launcher's cap binds
    orch = Path(out["orch_dir"])
    assert wait_finished(orch, timeout=120)["status"] == "completed"
    running = 0
    for ev in read_events(orch):  # in the order they happened
        if ev["type"] == "stage_launched":
            assert ev["launcher"] == "tmux"
            running += 1
            assert running == 1, ev
        elif ev["type"] == "merge_complete":
            running -= 1
    raw = json.loads((orch / "status.json").read_text())
    assert {raw["stages"][n]["launcher"] for n in "123"} == {"tmux"}
