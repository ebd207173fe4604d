"""Putting ``autorun`` on PATH: a link to the plugin's shim (``scripts/autorun``).

``autorun install-cli`` links ``$XDG_BIN_HOME`` (default ``~/.local/bin``) or
``--bin-dir``'s ``autorun`` to this plugin's shim, which finds its plugin root
through the link and its virtual environment from there. A file of the same name
that is not an autorun shim's link is never replaced; a link to another copy of
autorun's shim (an older plugin version) is replaced. ``orchestrate`` run through
the shim makes the link on its first run when ``autorun`` is not on PATH yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError

SHIM_ENV = "AUTORUN_SHIM"  # set by scripts/autorun: the shim this process came through


def plugin_root() -> Path:
    return Path(__file__).resolve().parent.parent


def shim_path() -> Path:
    return plugin_root() / "scripts" / "autorun"


def default_bin_dir(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_BIN_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".local" / "bin"


def _same_file(a: os.PathLike[str] | str, b: os.PathLike[str] | str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def is_autorun_shim_link(path: Path) -> bool:
    """A symlink to some copy of autorun's shim (``.../scripts/autorun``), even one
    whose plugin version was removed since."""
    if not path.is_symlink():
        return False
    target = os.readlink(path)
    return Path(target).name == "autorun" and Path(target).parent.name == "scripts"


def on_path(directory: Path, environ: Mapping[str, str]) -> bool:
    want = os.path.realpath(directory)
    return any(os.path.realpath(p) == want for p in environ.get("PATH", "").split(os.pathsep) if p)


@dataclass(frozen=True)
class InstallResult:
    """What `autorun install-cli` did to the link on PATH."""
    link: str
    target: str
    action: str  # created | updated | unchanged
    on_path: bool
    shadowed_by: Optional[str]  # another `autorun` found first on PATH

    def to_json(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "target": self.target,
            "action": self.action,
            "on_path": self.on_path,
            "shadowed_by": self.shadowed_by,
        }

    def to_text(self) -> str:
        verb = {"created": "linked", "updated": "re-linked", "unchanged": "already links"}
        lines = [f"{verb[self.action]} {self.link} -> {self.target}"]
        bin_dir = str(Path(self.link).parent)
        if not self.on_path:
            lines.append(
                f"{bin_dir} is not on your PATH; add it, e.g. "
                f"echo 'export PATH=\"{bin_dir}:$PATH\"' >> ~/.profile (then open a new shell)"
            )
        elif self.shadowed_by:
            lines.append(f"but `autorun` on your PATH is {self.shadowed_by}, found first")
        return "\n".join(lines)


def install_cli(bin_dir: Optional[Path], environ: Mapping[str, str]) -> InstallResult:
    """Link ``<bin_dir>/autorun`` to this plugin's shim (idempotent; see the module doc)."""
    shim = shim_path()
    if not shim.is_file():
        raise AutorunError(
            f"this autorun has no shim at {shim} (installed as a Python package?): "
            "its `autorun` console script is already the command",
        )
    directory = (bin_dir or default_bin_dir(environ)).expanduser().absolute()
    link = directory / "autorun"
    if os.path.lexists(link):
        if _same_file(link, shim) and link.is_symlink():
            action = "unchanged"
        elif is_autorun_shim_link(link):
            _symlink_over(shim, link)
            action = "updated"
        else:
            kind = "a symlink to " + os.readlink(link) if link.is_symlink() else "a file"
            raise AutorunError(
                f"{link} exists and is not autorun's link ({kind}); leaving it alone. "
                "Remove it yourself, or choose another directory with --bin-dir DIR",
                path=link,
            )
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AutorunError(f"cannot create {directory}: {exc.strerror}") from None
        _symlink_over(shim, link)
        action = "created"
    found = shutil.which("autorun")
    shadowed = found if found and not _same_file(found, shim) else None
    return InstallResult(str(link), str(shim), action, on_path(directory, environ), shadowed)


def _symlink_over(target: Path, link: Path) -> None:
    """Make ``link`` point at ``target`` in one step (a temp link renamed over it)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(str(target), str(tmp))
        os.replace(str(tmp), str(link))
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AutorunError(f"cannot link {link}: {exc.strerror}", path=link) from None


def first_run_link(environ: Mapping[str, str]) -> Optional[InstallResult]:
    """On a run through the shim (``environ``: this process's environment), when
    ``autorun`` is not on PATH and the default link does not exist: make it. Never
    raises; None when nothing was done."""
    if not environ.get(SHIM_ENV) or shutil.which("autorun"):
        return None
    if os.path.lexists(default_bin_dir(environ) / "autorun"):
        return None
    try:
        return install_cli(None, environ)
    except (AutorunError, OSError):
        return None


def cli_words(environ: Mapping[str, str]) -> list[str]:
    """How to run this autorun from any directory, as argv words: ``autorun`` when
    that is this plugin's shim on PATH, else the shim this process came through
    (``environ``: this process's environment), else this interpreter with ``-m
    autorun_py``."""
    found = shutil.which("autorun")
    shim = shim_path()
    if found and shim.is_file() and _same_file(found, shim):
        return ["autorun"]
    came = environ.get(SHIM_ENV)
    if came and os.path.isfile(came):
        return [os.path.abspath(came)]
    return [sys.executable, "-m", "autorun_py"]


def cli_status() -> tuple[Optional[str], Optional[str], bool]:
    """(``autorun`` found on PATH, what it resolves to, whether that is this plugin's shim)."""
    found = shutil.which("autorun")
    if found is None:
        return None, None, False
    real = os.path.realpath(found)
    return found, real, _same_file(real, shim_path())
