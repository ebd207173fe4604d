"""A run's launchers as text and values, below everything that starts a stage:
the names, one launcher and its cap (:class:`LauncherCap`), and the spec
``--launcher`` and the config take (``tmux`` or ``tmux=2,background=4``, an
object of caps, a list). Pure (no I/O); :mod:`autorun_py.config` reads the
config's spec through it, :mod:`autorun_py.launchers` re-exports every name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from autorun_py.errors import AutorunError

DEFAULT = "tmux"
NAMES = ("tmux", "background", "remote")


@dataclass(frozen=True)
class LauncherCap:
    """One launcher of a run and how many of its stages may run at once (None: as
    many as the run's total cap leaves)."""

    name: str
    max_parallel: Optional[int] = None

    def text(self) -> str:
        return self.name if self.max_parallel is None else f"{self.name}={self.max_parallel}"

    def to_raw(self) -> dict[str, Any]:
        return {"name": self.name, "max_parallel": self.max_parallel}


def check_name(name: str, where: str = "--launcher") -> str:
    if name not in NAMES:
        raise AutorunError(f"{where}: unknown launcher {name!r} (one of: {', '.join(NAMES)})")
    return name


def _cap(value: Any, where: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AutorunError(f"{where}: a launcher's cap must be a positive number, not {value!r}")
    return value


def _checked(caps: list[LauncherCap], where: str) -> list[LauncherCap]:
    if not caps:
        raise AutorunError(f"{where}: no launcher named (e.g. tmux, or tmux=2,background=4)")
    seen: set[str] = set()
    for cap in caps:
        check_name(cap.name, where)
        if cap.name in seen:
            raise AutorunError(f"{where}: launcher {cap.name!r} is named twice")
        seen.add(cap.name)
    return caps


def parse_spec(text: str, where: str = "--launcher") -> list[LauncherCap]:
    """``tmux`` or ``tmux=2,background=4`` (a name, or name=cap, comma-separated;
    a name without a cap takes what the total cap leaves)."""
    caps = []
    for part in str(text).split(","):
        name, eq, value = part.strip().partition("=")
        if not name.strip() and not eq:
            continue
        cap = _cap(value.strip(), f"{where} {part.strip()!r}") if eq else None
        caps.append(LauncherCap(name.strip(), cap))
    return _checked(caps, where)


def from_value(value: Any, where: str) -> list[LauncherCap]:
    """The config's ``launcher``/``launchers``: a spec string, an object ``{"tmux": 2,
    "background": 4}`` (in that order), or a list of names / ``{"name", "max_parallel"}``."""
    if isinstance(value, str):
        return parse_spec(value, where)
    if isinstance(value, Mapping):
        return _checked(
            [LauncherCap(str(k), _cap(v, f"{where}.{k}")) for k, v in value.items()], where
        )
    if isinstance(value, list):
        caps = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                caps.append(LauncherCap(item))
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                caps.append(
                    LauncherCap(item["name"], _cap(item.get("max_parallel"), f"{where}[{i}]"))
                )
            else:
                raise AutorunError(
                    f"{where}[{i}]: expected a launcher name or "
                    f'{{"name": ..., "max_parallel": ...}}, not {item!r}'
                )
        return _checked(caps, where)
    raise AutorunError(f"{where}: expected a launcher name or an object of caps, not {value!r}")


def spec_text(caps: Sequence[LauncherCap]) -> str:
    return ",".join(c.text() for c in caps)
