"""azlin's own settings as azlin reads them: the selected context, then config.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from azlin_lifecycle.azlin_settings import (
    parse_active_context,
    parse_config,
    parse_context,
    read_azlin_settings,
)
from azlin_lifecycle.errors import AzlinSettingsError, LifecycleConfigError

PROD = """name = "prod"
subscription_id = "11111111-0000-0000-0000-000000000001"
tenant_id = "22222222-0000-0000-0000-000000000002"
resource_group = "prod-rg"
region = "westus2"
"""


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("text", "name"), [
    ("prod\n", "prod"), ("  prod  \n\n", "prod"), ("", None), (" \n\t", None)])
def test_active_context_is_trimmed_and_blank_selects_none(text: str, name: str | None) -> None:
    assert parse_active_context(text) == name


def test_a_context_file_gives_every_field_azlin_applies() -> None:
    ctx = parse_context("prod", PROD, Path("/c/prod.toml"))
    assert (ctx.name, ctx.subscription_id, ctx.tenant_id, ctx.resource_group, ctx.region) == (
        "prod", "11111111-0000-0000-0000-000000000001", "22222222-0000-0000-0000-000000000002",
        "prod-rg", "westus2")
    assert ctx.path == Path("/c/prod.toml")


def test_blank_or_non_string_context_values_are_unset_and_the_name_falls_back() -> None:
    ctx = parse_context("dev", 'subscription_id = "  "\nresource_group = 42\n'
                        'region = " eastus "\n', Path("dev.toml"))
    assert (ctx.name, ctx.subscription_id, ctx.resource_group, ctx.region) == (
        "dev", None, None, "eastus")


def test_a_context_that_is_not_toml_is_one_line_naming_the_file() -> None:
    with pytest.raises(AzlinSettingsError) as err:
        parse_context("prod", "subscription_id = \n", Path("/home/u/.azlin/contexts/prod.toml"))
    text = str(err.value)
    assert text.startswith("/home/u/.azlin/contexts/prod.toml: azlin context 'prod' is "
                           "selected but its file is not valid TOML")
    assert "\n" not in text and "azlin context use" in text
    assert isinstance(err.value, LifecycleConfigError)  # the CLI: one line, exit 1


@pytest.mark.parametrize(("text", "group", "problem"), [
    ('default_resource_group = "rg-1"\ndefault_region = "eastus"\n', "rg-1", None),
    ('subscription_id = "ignored"\n', None, None),  # azlin has no such key
    ("", None, None),
    ('default_resource_group = "  "\n', None, None),
    ("default_resource_group = 3\n", None, "default_resource_group = 3 is not a string"),
])
def test_config_toml_default_resource_group(text: str, group: str | None,
                                            problem: str | None) -> None:
    assert parse_config(text) == (group, problem)


def test_config_toml_that_is_not_toml_is_a_problem_not_an_error() -> None:
    group, problem = parse_config("default_resource_group = \n")
    assert group is None and problem is not None and problem.startswith("not valid TOML")


# --------------------------------------------------------------------------- reading
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nothing_there_is_nothing_selected(isolated_dirs: Path) -> None:
    settings = read_azlin_settings()
    assert settings.context is None and settings.default_resource_group is None
    assert settings.config_path == isolated_dirs / "config.toml"


def test_reads_the_selected_context_under_azlin_config_dir(isolated_dirs: Path) -> None:
    write(isolated_dirs / "contexts" / "prod.toml", PROD)
    write(isolated_dirs / "contexts" / "dev.toml", 'resource_group = "dev-rg"\n')
    write(isolated_dirs / "config.toml", 'default_resource_group = "cfg-rg"\n')
    write(isolated_dirs / "active-context", "prod\n")
    settings = read_azlin_settings()
    assert settings.context is not None and settings.context.resource_group == "prod-rg"
    assert settings.context.path == isolated_dirs / "contexts" / "prod.toml"
    assert settings.default_resource_group == "cfg-rg"
    write(isolated_dirs / "active-context", "dev")  # azlin context use dev
    assert read_azlin_settings().context.name == "dev"  # type: ignore[union-attr]
    write(isolated_dirs / "active-context", "")
    assert read_azlin_settings().context is None


def test_home_dot_azlin_without_azlin_config_dir(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZLIN_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".azlin" / "contexts" / "prod.toml", PROD)
    write(tmp_path / ".azlin" / "active-context", "prod")
    assert read_azlin_settings().context.name == "prod"  # type: ignore[union-attr]


def test_a_selected_context_without_its_file_is_an_error_naming_it(isolated_dirs: Path) -> None:
    write(isolated_dirs / "active-context", "ghost\n")
    with pytest.raises(AzlinSettingsError) as err:
        read_azlin_settings()
    path = isolated_dirs / "contexts" / "ghost.toml"
    assert str(err.value).startswith(f"{path}: azlin context 'ghost' is selected but its "
                                     "file cannot be read (No such file or directory)")
    write(path, 'resource_group = "g"\n')  # created later: read then
    assert read_azlin_settings().context.resource_group == "g"  # type: ignore[union-attr]


def test_a_broken_selected_context_stays_an_error_until_fixed(isolated_dirs: Path) -> None:
    write(isolated_dirs / "active-context", "prod")
    path = write(isolated_dirs / "contexts" / "prod.toml", "subscription_id = [\n")
    for _ in range(2):  # the answer is cached with the file's stamp, the error too
        with pytest.raises(AzlinSettingsError, match="not valid TOML"):
            read_azlin_settings()
    write(path, PROD)
    assert read_azlin_settings().context.subscription_id.startswith("1111")  # type: ignore[union-attr]


def test_an_unreadable_marker_is_an_error(isolated_dirs: Path) -> None:
    (isolated_dirs / "active-context").mkdir(parents=True)
    with pytest.raises(AzlinSettingsError, match="cannot read which azlin context is selected"):
        read_azlin_settings()


def test_files_are_read_again_only_when_they_change(isolated_dirs: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from azlin_lifecycle import azlin_settings

    write(isolated_dirs / "contexts" / "prod.toml", PROD)
    marker = write(isolated_dirs / "active-context", "prod")
    config = write(isolated_dirs / "config.toml", 'default_resource_group = "a"\n')
    reads: list[str] = []
    real = azlin_settings._read
    monkeypatch.setattr(azlin_settings, "_read", lambda p: reads.append(p.name) or real(p))
    read_azlin_settings()
    first = sorted(reads)
    assert first == ["active-context", "config.toml", "prod.toml"]
    for _ in range(5):
        assert read_azlin_settings().default_resource_group == "a"
    assert sorted(reads) == first
    config.write_text('default_resource_group = "bb"\n')
    stamp = config.stat().st_mtime + 5
    os.utime(config, (stamp, stamp))
    assert read_azlin_settings().default_resource_group == "bb"
    assert reads.count("config.toml") == 2 and reads.count("active-context") == 1
    marker.write_text("prod ")
    assert read_azlin_settings().context.name == "prod"  # type: ignore[union-attr]
    assert reads.count("active-context") == 2
