"""`azlin-lifecycle shell-init bash|zsh|fish` in the real shells, with stand-in commands on
PATH that record their argv: `azlin lifecycle ...` reaches azlin-lifecycle, every other
azlin command reaches the `azlin` on PATH with its arguments unchanged, and exit statuses
come back. (zsh and fish: `make setup` installs them; a machine without them skips,
CI=true fails.)"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.cli.shell_cmd import SHELLS, fish_quote, load_line, render
from tests.integration.conftest import require

BIN = Path(sys.executable).parent
RECORDER = """#!/bin/sh
# records its argv (NUL-separated) and AZLIN_LIFECYCLE_PROG, exits $STAND_IN_EXIT
out="$RECORD_DIR/$(basename "$0")"
: > "$out.argv"
for arg in "$@"; do printf '%s\\0' "$arg" >> "$out.argv"; done
printf '%s' "${AZLIN_LIFECYCLE_PROG-unset}" > "$out.prog"
exit "${STAND_IN_EXIT:-0}"
"""
TRICKY = ["--rg", "x y", "", "--", "it's", 'say "hi"', "$HOME", "*", "a\\b", "-n",
          "tab\there", "new\nline", "$(echo no)", "`echo no`", ";", "lifecycle", "  "]
INVOKE = {  # a shell's command line that runs with startup files off
    "bash": ["bash", "--norc", "--noprofile", "-c"],
    "zsh": ["zsh", "-f", "-c"],
    "fish": ["fish", "--no-config", "-c"],
}


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require(shutil.which(name) is not None,
            f"{name} is not installed (scripts/system-deps installs it)")
    return name


@pytest.fixture
def stand_ins(tmp_path: Path) -> Path:
    """A directory with a recording `azlin` and `azlin-lifecycle`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("azlin", "azlin-lifecycle"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def quote(shell: str, word: str) -> str:
    return fish_quote(word) if shell == "fish" else shlex.quote(word)


def run(shell: str, function: str, argv: list[str], bin_dir: Path, exit_code: int = 0,
        **extra: str) -> subprocess.CompletedProcess[str]:
    """Define ``function`` in ``shell``, call ``azlin`` with ``argv``, exit with its status."""
    call = " ".join(["azlin", *(quote(shell, a) for a in argv)])
    status = "$status" if shell == "fish" else "$?"
    script = f"{function}\n{call}\nexit {status}\n"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent),
           "RECORD_DIR": str(bin_dir.parent), "STAND_IN_EXIT": str(exit_code),
           "LANG": "C.UTF-8", **extra}
    return subprocess.run([*INVOKE[shell], script], env=env, capture_output=True, text=True,
                          timeout=60)


def recorded(bin_dir: Path, name: str) -> tuple[list[str], str] | None:
    argv = bin_dir.parent / f"{name}.argv"
    if not argv.exists():
        return None
    words = argv.read_bytes().split(b"\0")[:-1]
    prog = (bin_dir.parent / f"{name}.prog").read_text()
    argv.unlink()
    return [w.decode() for w in words], prog


def test_other_commands_reach_azlin_unchanged(shell: str, stand_ins: Path) -> None:
    function = render(shell, str(stand_ins / "azlin-lifecycle"))
    for argv in (["list", *TRICKY], [], [""], ["--help"], ["Lifecycle", "x"], ["lifecycles"]):
        res = run(shell, function, argv, stand_ins)
        assert res.returncode == 0, (argv, res.stderr)
        assert recorded(stand_ins, "azlin") == (argv, "unset"), argv
        assert recorded(stand_ins, "azlin-lifecycle") is None


def test_lifecycle_reaches_azlin_lifecycle_without_the_word(shell: str,
                                                            stand_ins: Path) -> None:
    function = render(shell, str(stand_ins / "azlin-lifecycle"))
    for rest in (["status", *TRICKY], [], [""], ["--", "lifecycle"]):
        res = run(shell, function, ["lifecycle", *rest], stand_ins)
        assert res.returncode == 0, (rest, res.stderr)
        assert recorded(stand_ins, "azlin-lifecycle") == (rest, "azlin lifecycle"), rest
        assert recorded(stand_ins, "azlin") is None


@pytest.mark.parametrize("code", [1, 2, 3, 127])
def test_exit_statuses_come_back(shell: str, stand_ins: Path, code: int) -> None:
    function = render(shell, str(stand_ins / "azlin-lifecycle"))
    assert run(shell, function, ["list"], stand_ins, code).returncode == code
    assert run(shell, function, ["lifecycle", "check", "vm"], stand_ins, code).returncode == code


def test_a_path_with_spaces_and_quotes_is_quoted(shell: str, stand_ins: Path) -> None:
    odd = stand_ins.parent / "it's a \"dir\"" / "azlin-lifecycle"
    odd.parent.mkdir()
    shutil.copy(stand_ins / "azlin-lifecycle", odd)
    res = run(shell, render(shell, str(odd)), ["lifecycle", "list"], stand_ins)
    assert res.returncode == 0, res.stderr
    assert recorded(stand_ins, "azlin-lifecycle") == (["list"], "azlin lifecycle")


def test_with_the_real_azlin_lifecycle(shell: str, stand_ins: Path, tmp_path: Path) -> None:
    """What `shell-init` prints, with this installation's azlin-lifecycle."""
    (stand_ins / "azlin-lifecycle").unlink()  # ours must be found by its full path
    printed = subprocess.run([str(BIN / "azlin-lifecycle"), "shell-init", shell],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert load_line(shell) in printed and str(BIN / "azlin-lifecycle") in printed
    dirs = {"AZLIN_CONFIG_DIR": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "st")}
    config = run(shell, printed, ["lifecycle", "config", "path"], stand_ins, **dirs)
    assert config.returncode == 0, config.stderr
    assert config.stdout.strip() == str(tmp_path / "cfg" / "lifecycle-config.toml")
    bad = run(shell, printed, ["lifecycle", "config", "validate", "/nonexistent.toml"],
              stand_ins, **dirs)
    assert bad.returncode == 1
    assert bad.stderr.startswith("azlin lifecycle: error: /nonexistent.toml"), bad.stderr
    assert recorded(stand_ins, "azlin") is None
    other = run(shell, printed, ["list", "--all"], stand_ins, 4, **dirs)
    assert other.returncode == 4 and recorded(stand_ins, "azlin") == (["list", "--all"], "unset")


def test_install_mentions_shell_init(monkeypatch: pytest.MonkeyPatch) -> None:
    from azlin_lifecycle.cli import daemon_cmds
    from azlin_lifecycle.install import InstallResult

    monkeypatch.setattr("azlin_lifecycle.install.install", lambda **_: InstallResult(
        Path("/u/azlin-lifecycle.service"), "/x/python -m azlin_lifecycle daemon run",
        started=False, lingering=False))
    for login, line in (("/usr/bin/fish", "azlin-lifecycle shell-init fish | source to "
                                          "~/.config/fish/config.fish"),
                        ("/bin/zsh", 'eval "$(azlin-lifecycle shell-init zsh)" to ~/.zshrc'),
                        ("/bin/sh", 'eval "$(azlin-lifecycle shell-init bash)" to ~/.bashrc')):
        monkeypatch.setenv("SHELL", login)
        out = CliRunner().invoke(daemon_cmds.install, []).output
        assert f"'azlin lifecycle' beside azlin's own azlin: add {line}" in out.splitlines()


def test_unknown_shell_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["shell-init", "tcsh"])
    assert res.exit_code == 2 and "'tcsh' is not one of 'bash', 'zsh', 'fish'" in res.output


def test_the_shim_names_azlins_real_install_method() -> None:
    res = subprocess.run([str(BIN / "azlin"), "list"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PATH": str(BIN)})
    assert res.returncode == 127 and len(res.stderr.splitlines()) == 1
    for words in ("azlin is not installed", "release tarball unpacked into ~/.local/bin",
                  "'cargo install' from a clone", "https://github.com/rysweet/azlin#install",
                  'eval "$(azlin-lifecycle shell-init bash)"'):
        assert words in res.stderr
    assert "pipx install azlin" not in res.stderr
