"""shell-init: an ``azlin`` shell function, so ``azlin lifecycle`` works beside azlin itself.

azlin installs one binary at ``~/.local/bin/azlin``, where pipx also puts this package's
``azlin`` front command: whichever came last shadows the other, and azlin's own CLI has
no way to add a subcommand. A shell function comes before any command on PATH, so

    eval "$(azlin-lifecycle shell-init bash)"

makes ``azlin lifecycle ...`` run ``azlin-lifecycle ...`` and hands every other ``azlin``
command, its arguments unchanged and its exit status kept, to the ``azlin`` on PATH
(``command azlin``: the function itself is skipped). The function calls this
installation's ``azlin-lifecycle`` by its full path when it knows it, so it works
whether or not that directory is on PATH.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

SHELLS = ("bash", "zsh", "fish")
RC_FILES = {"bash": "~/.bashrc", "zsh": "~/.zshrc", "fish": "~/.config/fish/config.fish"}
HEADER = "# azlin lifecycle ... runs azlin-lifecycle ...; every other azlin command goes, " \
         "unchanged, to azlin.\n# Load it in {rc} with: {line}\n"

POSIX = """function azlin {{
    if [ "$#" -gt 0 ] && [ "$1" = lifecycle ]; then
        shift
        AZLIN_LIFECYCLE_PROG='azlin lifecycle' command {command} "$@"
    else
        command azlin "$@"
    fi
}}
"""

FISH = """function azlin --description 'azlin, and azlin lifecycle from azlin-lifecycle'
    if test (count $argv) -gt 0; and test "$argv[1]" = lifecycle
        set -e argv[1]
        set -lx AZLIN_LIFECYCLE_PROG 'azlin lifecycle'
        command {command} $argv
    else
        command azlin $argv
    end
end
"""


def load_line(shell: str) -> str:
    """The line for a shell's start-up file that defines the function."""
    if shell == "fish":
        return "azlin-lifecycle shell-init fish | source"
    return f'eval "$(azlin-lifecycle shell-init {shell})"'


def fish_quote(text: str) -> str:
    """``text`` as one fish word (in single quotes only ``\\`` and ``'`` are special)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(shell: str, command: str) -> str:
    """The ``azlin`` function for ``shell`` that runs ``command`` for ``azlin lifecycle``."""
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}; one of {', '.join(SHELLS)}")
    head = HEADER.format(rc=RC_FILES[shell], line=load_line(shell))
    if shell == "fish":
        return head + FISH.format(command=fish_quote(command))
    return head + POSIX.format(command=shlex.quote(command))


def own_command() -> str:
    """This installation's ``azlin-lifecycle`` (beside its Python), else the bare name."""
    candidate = Path(sys.executable).parent / "azlin-lifecycle"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return "azlin-lifecycle"


def user_shell() -> str:
    """The user's login shell if it is one shell-init knows, else bash."""
    name = Path(os.environ.get("SHELL", "")).name
    return name if name in SHELLS else "bash"


@click.command("shell-init")
@click.argument("shell", type=click.Choice(SHELLS))
def shell_init(shell: str) -> None:
    """Print an `azlin` shell function: `azlin lifecycle ...` runs azlin-lifecycle, every
    other azlin command goes unchanged to azlin.

    \b
    bash: eval "$(azlin-lifecycle shell-init bash)"    (in ~/.bashrc)
    zsh:  eval "$(azlin-lifecycle shell-init zsh)"     (in ~/.zshrc)
    fish: azlin-lifecycle shell-init fish | source     (in ~/.config/fish/config.fish)
    """
    click.echo(render(shell, own_command()), nl=False)


COMMANDS = [shell_init]
