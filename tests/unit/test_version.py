"""The version has one source, pyproject.toml, read back through importlib.metadata."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import azlin_lifecycle
from azlin_lifecycle import UNKNOWN_VERSION, distribution_version

ROOT = Path(__file__).parents[2]


def test_version_comes_from_pyproject_through_the_installed_metadata() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert metadata.version("azlin-lifecycle") == declared
    assert azlin_lifecycle.__version__ == declared
    source = (ROOT / "azlin_lifecycle" / "__init__.py").read_text()
    assert declared not in source, "__init__.py must not repeat the version"


def test_debian_changelog_agrees_with_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    first = (ROOT / "packaging" / "debian" / "changelog").read_text().splitlines()[0]
    entry = re.match(r"azlin-lifecycle \(([^)]+)\)", first)
    assert entry and entry.group(1) == declared


def test_a_tree_that_was_never_installed_reports_0_unknown() -> None:
    assert distribution_version("azlin-lifecycle-never-installed") == UNKNOWN_VERSION == "0+unknown"
