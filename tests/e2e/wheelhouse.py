"""A local wheelhouse of autorun's dependencies, so tests of the shim's first-use
install never touch the network (``PIP_NO_INDEX=1 PIP_FIND_LINKS=<dir>``).

The wheels are rebuilt from the distributions installed in the test interpreter
(their RECORD lists every file): a wheel is a zip of the package files and its
.dist-info, with a fresh RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
_SKIP_META = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _project_dependencies() -> list[str]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.S | re.M)
    body = block.group(1) if block else ""
    array = re.search(r"^dependencies\s*=\s*\[(.*?)\]", body, re.S | re.M)
    assert array, "no [project] dependencies in pyproject.toml"
    return [a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', array.group(1))]


def _wanted(requirements: list[str]) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[key] = dist
        todo.extend(dist.requires or [])
    return list(seen.values())


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(dist: metadata.Distribution, dest: Path) -> Path:
    name = dist.metadata["Name"]
    version = dist.version
    files = [f for f in (dist.files or []) if not str(f).startswith("..")]
    info_dir = next(str(f).split("/")[0] for f in files if ".dist-info/" in str(f))
    wheel_meta = (Path(str(dist.locate_file(info_dir))) / "WHEEL").read_text(encoding="utf-8")
    tag = re.search(r"^Tag:\s*(\S+)", wheel_meta, re.M)
    assert tag, f"{name}: no Tag in WHEEL"
    normalized = re.sub(r"[-_.]+", "_", name)
    path = dest / f"{normalized}-{version}-{tag.group(1)}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            rel = str(f)
            if "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            if rel.startswith(info_dir + "/") and rel.split("/", 1)[1] in _SKIP_META:
                continue
            src = Path(str(dist.locate_file(f)))
            if not src.is_file():
                continue
            data = src.read_bytes()
            zf.writestr(rel, data)
            record.append(f"{rel},{_digest(data)},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path


def build_wheelhouse(dest: Path) -> Path:
    """Wheels of every (transitive) dependency of autorun, for this interpreter."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in _wanted(_project_dependencies()):
        build_wheel(dist, dest)
    return dest


def offline_pip_env(wheelhouse: Path) -> dict[str, str]:
    """Environment that makes pip install from ``wheelhouse`` only."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # The shim's venv must come from the interpreter the wheels were made for.
        "AUTORUN_PYTHON": sys.executable,
    }
