"""The lock scripts/install.sh installs from pins every dependency pyproject.toml declares
(titus's own and its test tools'), each to one version with the hashes of its files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, tuple[str, list[str]]]:
    text = (ROOT / "requirements.lock").read_text()
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        if block.startswith("#") or not block.strip():
            continue
        head = block.split(";")[0].split("\\")[0].strip()
        name, _, version = head.partition("==")
        entries[canonicalize_name(name)] = (
            version,
            re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
        )
    return entries


def test_every_declared_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    locked = _locked()
    missing = []
    for spec in declared:
        req = Requirement(spec)
        entry = locked.get(canonicalize_name(req.name))
        if entry is None or not req.specifier.contains(entry[0], prereleases=True):
            missing.append(spec)
    assert not missing, f"run scripts/lock.sh: not pinned (or pinned outside the range): {missing}"
    unhashed = [name for name, (version, hashes) in locked.items() if not version or not hashes]
    assert not unhashed, f"pinned without a version or a hash: {unhashed}"
