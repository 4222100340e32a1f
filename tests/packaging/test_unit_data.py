"""The packaged copies of the unit template, and the unit the Debian package installs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# packaging/ is not a Python package (and `packaging` is a PyPI name): load the file.
_spec = importlib.util.spec_from_file_location("packaged_unit", REPO / "packaging" /
                                               "packaged_unit.py")
assert _spec and _spec.loader
packaged_unit_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(packaged_unit_module)
PLACEHOLDERS = packaged_unit_module.PLACEHOLDERS
TEMPLATE: Path = packaged_unit_module.TEMPLATE
packaged_unit = packaged_unit_module.packaged_unit


def test_packaged_template_is_the_units_template() -> None:
    """install.template_text() prefers azlin_lifecycle/data/: it must not drift from units/."""
    assert TEMPLATE.read_text() == (REPO / "units" / "azlin-lifecycle.service").read_text()


def test_packaged_unit_fills_every_placeholder_with_per_user_specifiers() -> None:
    text = packaged_unit(TEMPLATE.read_text(), "/usr/bin/azlin-lifecycle")
    assert not any(p in text for p in PLACEHOLDERS)
    assert not re.search(r"@[A-Z_]+@", text)
    assert re.search(r"^ExecStart=/usr/bin/azlin-lifecycle daemon run$", text, re.M)
    assert re.search(r"^ReadWritePaths=-%h/\.azlin -%h/\.local/state/azlin-lifecycle "
                     r"-%h/\.azure$", text, re.M)
    assert re.search(r"^ExecStartPre=\+/bin/mkdir -p -m 0700 %h/\.azlin "
                     r"%h/\.local/state/azlin-lifecycle %h/\.azure$", text, re.M)
    env = re.search(r"^Environment=AZURE_CONFIG_DIR=%h/\.azure PATH=(\S+)$", text, re.M)
    assert env, text
    assert {"%h/.local/bin", "/usr/bin", "/bin"} <= set(env.group(1).split(":"))
    # The sandbox of the template is kept as it is.
    for line in ("ProtectSystem=strict", "ProtectHome=read-only", "Type=notify",
                 "WantedBy=default.target"):
        assert re.search(f"^{line}$", text, re.M), line
