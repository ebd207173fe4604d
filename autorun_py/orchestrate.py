"""`autorun orchestrate`: create the run, launch what is ready, print the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py.config import Config
from autorun_py.launch import claim, session_name, start_claimed
from autorun_py.rundir import create_orchestration, initial_state, repo_info, target_dir
from autorun_py.state import PENDING, STATUS_FILE, StatusStore, Transaction
from autorun_py.summary import launch_summary


@dataclass
class OrchestrateOutcome:
    """What `autorun orchestrate` made and started."""
    orch_dir: str
    status_file: str
    launched: list[int]
    pending: list[int]
    text: str
    dry_run: bool
    launch_failed: list[tuple[int, str]] = field(default_factory=list)
    monitor_pid: Optional[int] = None
    max_parallel: Optional[int] = None
    max_parallel_reason: str = ""
    plan_warnings: list[str] = field(default_factory=list)  # "path: line N: ..." each
    verify: Optional[dict[str, Any]] = None
    # the run's launchers with their caps, and where each launched stage was placed
    launchers: list[dict[str, Any]] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "orch_dir": self.orch_dir,
            "status_file": self.status_file,
            "launched": self.launched,
            "pending": self.pending,
            "max_parallel": self.max_parallel,
            "verify": self.verify,
            "launchers": self.launchers,
            "placed": self.placed,
        }
        if self.max_parallel_reason:
            out["max_parallel_reason"] = self.max_parallel_reason
        if self.plan_warnings:
            out["warnings"] = self.plan_warnings
        if self.dry_run:
            out["dry_run"] = True
        if self.launch_failed:
            out["launch_failed"] = [{"stage": n, "error": e} for n, e in self.launch_failed]
        return out


def run_orchestrate(
    plan_path: Path,
    cwd: Path,
    *,
    max_parallel: Optional[int] = None,
    max_parallel_reason: str = "",
    schedule: str = "dataflow",
    launcher: str = "tmux",
    dry_run: bool = False,
    launch: bool = True,
    monitor: bool = True,
    verify: Optional[str] = None,
    verify_timeout: Optional[float] = None,
    remote_environment: Optional[str] = None,
    remote_git_remote: Optional[str] = None,
    config: Config,
) -> OrchestrateOutcome:
    """``config``: the user's configuration as the CLI edge loaded it; every part
    of the run's creation and first launch uses this one."""
    from autorun_py.gate import resolve_spec
    from autorun_py.plan import load_plan
    from autorun_py.rundir import unique_slug

    plan = load_plan(plan_path)
    gate = resolve_spec(
        command_line=verify,
        command_line_timeout=verify_timeout,
        front_matter=plan.front_matter,
        plan_path=plan.path,
        config=config,
    ).to_raw()
    remote = None
    from autorun_py.launchers import parse_spec

    if "remote" in [c.name for c in parse_spec(launcher, "--launcher")]:
        remote = _remote_settings(plan, cwd, remote_environment, remote_git_remote, config)
    if dry_run:
        repo = repo_info(cwd)
        target = target_dir(plan.name, repo.root)
        state = initial_state(
            plan,
            repo,
            target,
            unique_slug(plan.slug),
            schedule=schedule,
            max_parallel=max_parallel,
            verify=gate,
            launcher=launcher,
        )
        txn = Transaction(state)
        would = claim(txn) if launch else []
        for n in would:
            state.stages[n].session = session_name(state, n)
        pending = sorted(n for n, s in state.stages.items() if s.status == PENDING)
        return OrchestrateOutcome(
            orch_dir=str(target),
            status_file=str(target / STATUS_FILE),
            launched=would,
            pending=pending,
            text=launch_summary(state, would, dry_run=True, cap_reason=max_parallel_reason),
            dry_run=True,
            max_parallel=max_parallel,
            max_parallel_reason=max_parallel_reason,
            plan_warnings=[f"{plan.path}: {w}" for w in plan.warnings],
            verify=gate,
            **_placement(state, would),
        )
    if launch:
        _check_agent(config)
        _check_identity(cwd)
    state = create_orchestration(
        plan, cwd, schedule=schedule, max_parallel=max_parallel, verify=gate, launcher=launcher
    )
    orch_dir = Path(state.orch_dir)
    if remote is not None:  # before any stage is claimed: the launcher reads it
        with StatusStore(orch_dir).transaction() as t:
            t.state.extra["remote"] = remote
    launched: list[int] = []
    failed: list[tuple[int, str]] = []
    if not monitor:
        with StatusStore(orch_dir).transaction() as t:
            t.state.monitor["disabled"] = True  # later launches (merge, retry) respect it
    if launch:
        store = StatusStore(orch_dir)
        with store.transaction() as t:
            claimed = claim(t)
        result = start_claimed(orch_dir, claimed, config=config)
        launched, failed = result.launched, result.failed
    monitor_pid = None
    if launch and monitor:
        monitor_pid = _start_monitor(orch_dir)
    final = StatusStore(orch_dir).read()
    pending = sorted(n for n, s in final.stages.items() if s.status == PENDING)
    return OrchestrateOutcome(
        orch_dir=str(orch_dir),
        status_file=str(orch_dir / STATUS_FILE),
        launched=launched,
        pending=pending,
        text=launch_summary(final, launched, cap_reason=max_parallel_reason),
        dry_run=False,
        launch_failed=failed,
        monitor_pid=monitor_pid,
        max_parallel=max_parallel,
        max_parallel_reason=max_parallel_reason,
        plan_warnings=[f"{plan.path}: {w}" for w in plan.warnings],
        verify=gate,
        **_placement(final, launched),
    )


def _check_agent(config: Config) -> None:
    """Refuse before anything is made when no stage session could start."""
    from autorun_py.config import require_agent
    from autorun_py.errors import AutorunError

    try:
        require_agent(config)
    except AutorunError as exc:
        raise AutorunError(f"{exc}; no run was created") from None


def _check_identity(cwd: Path) -> None:
    """Refuse before anything is made when no stage could commit its work."""
    from autorun_py import git
    from autorun_py.errors import AutorunError

    problem = git.identity_problem(cwd)
    if problem:
        raise AutorunError(
            f"git cannot commit here ({problem}), so every stage would fail at its first "
            'commit; set it with `git config --global user.email "you@example.com"` and '
            '`git config --global user.name "Your Name"`; no run was created'
        )


def _start_monitor(orch_dir: Path) -> Optional[int]:
    """Start the run's background monitor (at most one per run; it holds a lock)."""
    from autorun_py.supervisor import spawn_monitor

    return spawn_monitor(orch_dir)


def _remote_settings(
    plan: Any, cwd: Path, environment: Optional[str], git_remote: Optional[str], config: Config
) -> dict[str, str]:
    """The remote launcher's settings (flags over front matter over config), and a
    refusal before anything is made when the repository lacks the git remote."""
    from autorun_py.git import repo_root
    from autorun_py.launchers.remote import check_git_remote, resolve_settings

    settings = resolve_settings(
        command_line_environment=environment,
        command_line_git_remote=git_remote,
        front_matter=plan.front_matter,
        plan_path=plan.path,
        config=config,
    )
    check_git_remote(repo_root(cwd), settings)
    return settings.to_raw()


def _placement(state: Any, launched: list[int]) -> dict[str, Any]:
    """The run's launchers and caps, and each launched stage's launcher (for --json)."""
    from autorun_py import launchers

    return {
        "launchers": [c.to_raw() for c in launchers.run_caps(state)],
        "placed": {str(n): launchers.stage_launcher_name(state, state.stages[n]) for n in launched},
    }
