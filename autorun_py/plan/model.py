"""The master plan's model: stages, the plan with its graph facts, and its problems."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import graph
from autorun_py.errors import AutorunError

# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Stage:
    """A stage of the master plan."""
    number: int
    name: str
    depends_on: tuple[int, ...]  # sorted, unique
    scope: str  # the section's Markdown minus heading and dependency line, stripped
    line: int  # 1-based line of the stage's heading (or table row)
    estimate_hours: Optional[float] = None
    declared_wave: Optional[int] = None


@dataclass(frozen=True)
class PlanProblem:
    """A problem of the plan, with the line it is on."""
    line: Optional[int]
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


class PlanError(AutorunError):
    """An invalid plan; ``str(err)`` is one ``path:line: message`` line per problem."""

    path: str

    def __init__(self, path: str, problems: Sequence[PlanProblem]) -> None:
        self.problems: list[PlanProblem] = list(problems) or [PlanProblem(None, "invalid plan")]
        first = self.problems[0]
        super().__init__(first.message, path=path, line=first.line)
        self.path = str(path)

    def __str__(self) -> str:
        return "\n".join(p.format(self.path) for p in self.problems)


@dataclass(frozen=True)
class Plan:
    """A parsed master plan: its stages, their graph, and its problems."""
    path: Path  # absolute
    name: str  # plan name
    slug: str  # project slug
    stages: tuple[Stage, ...]  # sorted by number
    waves: tuple[tuple[int, ...], ...]
    critical_path: tuple[int, ...]
    warnings: tuple[str, ...]
    # ``key: value`` lines of a YAML front matter block (e.g. ``verify: pytest -q``)
    front_matter: dict[str, str] = field(default_factory=dict, compare=False)
    _index: dict[int, Stage] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({s.number: s for s in self.stages})

    def stage(self, number: int) -> Stage:
        try:
            return self._index[number]
        except KeyError:
            raise AutorunError(f"the plan has no stage {number}", path=self.path) from None

    def deps(self) -> dict[int, tuple[int, ...]]:
        return {s.number: s.depends_on for s in self.stages}

    def weights(self) -> dict[int, float]:
        """Estimated hours per stage; 1.0 each without estimates.

        When only some stages give an estimate, the others weigh the median estimate.
        """
        given = [s.estimate_hours for s in self.stages if s.estimate_hours is not None]
        default = _median(given) if given else 1.0
        return {
            s.number: (s.estimate_hours if s.estimate_hours is not None else default)
            for s in self.stages
        }

    def has_estimates(self) -> bool:
        return any(s.estimate_hours is not None for s in self.stages)

    def descendants(self, number: int) -> frozenset[int]:
        self.stage(number)
        return frozenset(graph.descendants(self.deps(), number))

    def wave_of(self, number: int) -> int:
        return graph.wave_of(self.waves)[number]

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_name": self.name,
            "project_slug": self.slug,
            "stages": [
                {
                    "number": s.number,
                    "name": s.name,
                    "depends_on": list(s.depends_on),
                    "scope": s.scope,
                }
                for s in self.stages
            ],
            "waves": [list(w) for w in self.waves],
            "critical_path": list(self.critical_path),
            "warnings": list(self.warnings),
        }


def front_matter_values(lines: Sequence[str]) -> dict[str, str]:
    """Top-level ``key: value`` scalars of a front matter block (quotes removed)."""
    out: dict[str, str] = {}
    for ln in lines:
        m = re.match(r"^([\w.-]+)\s*:\s*(.*?)\s*$", ln)
        if not m:
            continue
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[m.group(1)] = value
    return out


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
