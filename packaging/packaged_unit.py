"""Render the unit template as the Debian package's /usr/lib/systemd/user unit.

``azlin lifecycle install`` fills the template for one user (their interpreter, their
directories). The packaged unit serves every user, so it names the packaged entry point
and uses the ``%h`` specifier (the user's home) for the writable directories, which
``ExecStartPre=+`` creates outside the sandbox: ProtectHome=read-only would forbid it,
and ReadWritePaths= can only open up directories that exist. The Azure CLI's config dir
is ``%h/.azure`` (the default; ``azlin-lifecycle install`` honours ``AZURE_CONFIG_DIR``).
This unit cannot know where a user's ``az`` lives: its PATH lists the places the Azure
CLI's installers use (``/usr/bin`` for the .deb/.rpm, ``~/.local/bin`` for pip/pipx,
``~/bin`` for the install script, ``/snap/bin``, Homebrew's ``/home/linuxbrew``).

``python packaging/packaged_unit.py --exec /usr/bin/azlin-lifecycle -o FILE``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "azlin_lifecycle" / "data" / "azlin-lifecycle.service"
PLACEHOLDERS = ("@EXEC_START@", "@READ_WRITE_PATHS@", "@ENVIRONMENT@")
# paths.config_dir() and paths.state_dir() without AZLIN_CONFIG_DIR/XDG_STATE_HOME.
WRITABLE = ("%h/.azlin", "%h/.local/state/azlin-lifecycle", "%h/.azure")
# install.SAFE_PATH between the per-user and the extra places where az gets installed.
AZ_PATH = ("%h/.local/bin:%h/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
           ":/snap/bin:/home/linuxbrew/.linuxbrew/bin")
HEADER = (
    "# azlin-lifecycle as a systemd user service, installed by the azlin-lifecycle package.\n"
    "# Not enabled for anyone: each user runs `systemctl --user enable --now "
    "azlin-lifecycle`.\n"
    "# `azlin-lifecycle install` writes a per-user unit to ~/.config/systemd/user/ instead\n"
    "# (needed when AZLIN_CONFIG_DIR or XDG_STATE_HOME move the directories below).\n"
)


def packaged_unit(template: str, executable: str) -> str:
    """The template with every placeholder filled for a system-wide user unit."""
    missing = [p for p in PLACEHOLDERS if p not in template]
    if missing:
        raise ValueError(f"the unit template lacks {', '.join(missing)}")
    if any(c.isspace() or c == "%" for c in executable):
        raise ValueError(f"{executable!r}: the entry point path must not contain spaces or %")
    lines = template.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):  # the template's header speaks of install
        lines.pop(0)
    body = "".join(lines)
    mkdir = (f"Environment=AZURE_CONFIG_DIR=%h/.azure PATH={AZ_PATH}\n"
             "# The writable directories must exist before the sandbox is set up.\n"
             f"ExecStartPre=+/bin/mkdir -p -m 0700 {' '.join(WRITABLE)}")
    return HEADER + (body.replace("@EXEC_START@", f"{executable} daemon run")
                     .replace("@READ_WRITE_PATHS@", " ".join(f"-{d}" for d in WRITABLE))
                     .replace("@ENVIRONMENT@", mkdir))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exec", dest="executable", default="/usr/bin/azlin-lifecycle")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    args.output.write_text(packaged_unit(args.template.read_text(), args.executable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
