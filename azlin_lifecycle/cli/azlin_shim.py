"""The ``azlin`` command: ``azlin lifecycle ...`` here, everything else to azlin.

Its only own subcommand is ``lifecycle``. Any other subcommand is handed, unchanged,
to the next ``azlin`` on PATH that is not this shim (so an installed azlin keeps
working), or the user is told plainly that azlin is not installed.

azlin installs its binary at ``~/.local/bin/azlin``, where pipx puts this command too:
one replaces the other. ``azlin-lifecycle shell-init`` gives the shell an ``azlin``
function that does the same dispatch without either file (:mod:`.shell_cmd`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

MARKER = b"azlin_lifecycle.cli.azlin_shim"
USAGE = """Usage: azlin lifecycle [OPTIONS] COMMAND [ARGS]...

This 'azlin' comes with azlin-lifecycle; its only own command is 'lifecycle'.
Other commands are passed to the azlin tool when it is installed.
Try: azlin lifecycle --help
"""


def is_shim(path: Path) -> bool:
    """True when ``path`` is this shim (any installation of it), not azlin itself."""
    try:
        if path.resolve() == Path(sys.argv[0]).resolve():
            return True
        with path.open("rb") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def find_real_azlin() -> Path | None:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("azlin", path=directory or ".")
        if found and not is_shim(Path(found)):
            return Path(found)
    return None


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "lifecycle":
        from .main import main as lifecycle_main

        lifecycle_main(args[1:], prog_name="azlin lifecycle")
        return
    if not args or args[0] in ("-h", "--help"):
        real = find_real_azlin()
        if real is None:
            sys.stdout.write(USAGE)
            sys.exit(0)
    real = find_real_azlin()
    if real is None:
        sys.stderr.write(
            f"azlin: {args[0]!r} is an azlin command, but azlin is not installed "
            "(only 'azlin lifecycle' comes with azlin-lifecycle). Install azlin: its "
            "release tarball unpacked into ~/.local/bin, or 'cargo install' from a clone "
            "(https://github.com/rysweet/azlin#install). Its binary takes this 'azlin' "
            "command's place; keep 'azlin lifecycle' with: "
            'eval "$(azlin-lifecycle shell-init bash)"\n'
        )
        sys.exit(127)
    os.execv(real, [str(real), *args])
