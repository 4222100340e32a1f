"""The azlin-lifecycle(1) man page, generated from the click commands.

``python -m azlin_lifecycle.manpage [-o FILE]`` writes roff: one page with a section per
command (groups recursively), each with its usage, help text and every option. The page
date comes from ``SOURCE_DATE_EPOCH`` when set (reproducible package builds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Iterator, Sequence

import click

PROG = "azlin-lifecycle"


def roff_text(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and control characters at line start."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        line = line.rstrip()
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _paragraphs(text: str) -> str:
    """Click help text (blank-line separated paragraphs, \\b for verbatim) as roff."""
    blocks = []
    for para in click.unstyle(text).strip().split("\n\n"):
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            blocks.append(".nf\n" + roff_text("\n".join(lines[1:])) + "\n.fi")
        else:
            blocks.append(roff_text(" ".join(line.strip() for line in lines)))
    return "\n.PP\n".join(b for b in blocks if b)


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    """Every command under ``command`` (itself first), depth first, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                yield from walk(sub, (*path, name))


def _option_entries(command: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    entries = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            entries.append(record)
    return entries


def _argument_names(command: click.Command) -> list[str]:
    return [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]


def _section(path: tuple[str, ...], command: click.Command, parent: click.Context) -> str:
    name = " ".join((PROG, *path))
    ctx = click.Context(command, info_name=path[-1] if path else PROG, parent=parent,
                        **command.context_settings)
    usage = " ".join(command.collect_usage_pieces(ctx))
    parts = ([f".SS {roff_text(name)}", f".B {roff_text(name)}\n{roff_text(usage)}"]
             if path else [".SH OPTIONS"])
    if path and command.help:
        parts.append(".PP\n" + _paragraphs(command.help))
    if command.epilog:
        parts.append(".PP\n" + _paragraphs(command.epilog))
    for term, desc in _option_entries(command, ctx):
        parts.append(f".TP\n.B {roff_text(term)}\n{roff_text(' '.join(desc.split()))}")
    if isinstance(command, click.Group):
        subs = [n for n in sorted(command.commands) if not command.commands[n].hidden]
        parts.append(".PP\nCommands: " + roff_text(", ".join(subs)) + ".")
    return "\n".join(parts)


def page_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch and epoch.isdigit()
            else dt.datetime.now(dt.UTC))
    return when.strftime("%Y-%m-%d")


def render(root: click.Command | None = None) -> str:
    """The whole man page for ``root`` (default: the azlin-lifecycle CLI)."""
    from . import __version__

    if root is None:
        from .cli.main import cli as root
    assert root is not None
    top = click.Context(root, info_name=PROG, **root.context_settings)
    summary = roff_text(root.get_short_help_str(limit=200).rstrip("."))
    out = [
        f'.TH AZLIN\\-LIFECYCLE 1 "{page_date()}" "azlin-lifecycle {__version__}" '
        '"User Commands"',
        ".SH NAME",
        f"{roff_text(PROG)} \\- {summary}",
    ]
    commands = list(walk(root))
    usage = " ".join(root.collect_usage_pieces(top))
    out.append(f".SH SYNOPSIS\n.B {roff_text(PROG)}\n{roff_text(usage)}")
    out.append(".SH DESCRIPTION\n" + _paragraphs(root.help or ""))
    out.append(
        ".PP\nThe daemon runs as the systemd user service azlin\\-lifecycle.service; "
        "each user enables it with\n.B systemctl \\-\\-user enable \\-\\-now "
        "azlin\\-lifecycle\n(or\n.BR \"azlin\\-lifecycle install\" ),\nand reads "
        "its journal with\n.BR \"journalctl \\-\\-user \\-x \\-u azlin\\-lifecycle\" .")
    out.append(_section((), root, top))
    out.append(".SH COMMANDS")
    for path, command in commands[1:]:
        parent, group = top, commands[0][1]
        for name in path[:-1]:
            assert isinstance(group, click.Group)
            group = group.commands[name]
            parent = click.Context(group, info_name=name, parent=parent)
        out.append(_section(path, command, parent))
    out.append(
        ".SH FILES\n"
        ".TP\n.I ~/.azlin/lifecycle\\-config.toml\n"
        "The configuration (AZLIN_CONFIG_DIR replaces ~/.azlin).\n"
        ".TP\n.I ~/.local/state/azlin\\-lifecycle/\n"
        "Health history and repair records (under XDG_STATE_HOME when set).\n"
        ".TP\n.I /usr/lib/systemd/user/azlin\\-lifecycle.service\n"
        "The user unit of the Debian package; a unit written by\n"
        ".B azlin\\-lifecycle install\n"
        "in ~/.config/systemd/user/ takes precedence.\n"
        ".TP\n.I /usr/lib/systemd/catalog/azlin\\-lifecycle.catalog\n"
        "Explanations of the daemon's journal messages (journalctl \\-x).")
    out.append(".SH ENVIRONMENT\n"
               ".TP\n.B AZLIN_LIFECYCLE_CONFIG\nThe configuration file (like \\-\\-config).\n"
               ".TP\n.B AZLIN_CONFIG_DIR\nReplaces ~/.azlin.\n"
               ".TP\n.B XDG_STATE_HOME\nWhere the state directory lives.")
    out.append(".SH EXIT STATUS\n0 on success, 1 on an error, 2 on a usage error, "
               "130 when interrupted.")
    out.append(".SH SEE ALSO\n.BR systemctl (1),\n.BR journalctl (1),\n.BR az (1)")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azlin_lifecycle.manpage",
                                     description="Write the azlin-lifecycle(1) man page.")
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    text = render()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
