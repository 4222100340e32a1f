"""The man page is generated from the click commands: every command and option is in it,
and man/groff render it without warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from azlin_lifecycle import manpage
from azlin_lifecycle.cli.main import cli


def flat(roff: str) -> str:
    return roff.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")


def test_every_command_and_option_is_documented() -> None:
    page = flat(manpage.render())
    commands = list(manpage.walk(cli))
    assert len(commands) > 20
    for path, command in commands:
        if path:
            assert f".SS azlin-lifecycle {' '.join(path)}\n" in page, path
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in (*param.opts, *param.secondary_opts):
                    assert flag in page, (path, flag)
    assert "-h, --help" in page


def test_roff_escaping() -> None:
    assert manpage.roff_text(".x\n'y\na-b\\c") == "\\&.x\n\\&'y\na\\-b\\ec"


def test_a_new_command_appears_without_editing_the_page() -> None:
    @click.group()
    def root() -> None:
        """Root help."""

    @root.command(name="frobnicate")
    @click.option("--wobble-factor", type=int, help="How much to wobble.")
    def frob(wobble_factor: int) -> None:
        """Frobnicate things."""

    page = flat(manpage.render(root))
    assert ".SS azlin-lifecycle frobnicate" in page
    assert "--wobble-factor INTEGER" in page and "How much to wobble." in page


def test_page_date_follows_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert '"2023-11-14"' in manpage.render().splitlines()[0]


def test_man_renders_it_without_warnings(tmp_path: Path) -> None:
    if shutil.which("man") is None or shutil.which("groff") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("man/groff missing under CI (apt-get install man-db groff-base)")
        pytest.skip("man or groff is not installed")
    page = tmp_path / "azlin-lifecycle.1"
    assert manpage.main(["-o", str(page)]) == 0
    # What lintian's manpage check runs.
    result = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8", "MANROFFSEQ": "", "MANWIDTH": "80"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                          timeout=60, check=True, env={**os.environ, "MANPAGER": "cat"}).stdout
    assert "azlin-lifecycle daemon run" in text
