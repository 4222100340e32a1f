from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from azlin_lifecycle import LifecycleManager, MonitoringConfig
from azlin_lifecycle.config import RestartPolicy
from azlin_lifecycle.errors import LifecycleConfigError


def test_enable_status_list_disable(tmp_path: Path) -> None:
    manager = LifecycleManager(tmp_path / "cfg" / "lifecycle-config.toml")
    manager.enable_monitoring(
        "my-vm",
        MonitoringConfig(
            check_interval_seconds=90,
            restart_policy=RestartPolicy.ON_FAILURE,
            hooks={"on_failure": "/usr/local/bin/alert.sh"},
        ),
    )
    manager.enable_monitoring("other-vm", MonitoringConfig())
    status = manager.get_monitoring_status("my-vm")
    assert status.enabled and status.config.check_interval_seconds == 90
    assert manager.list_monitored_vms() == ["my-vm", "other-vm"]
    manager.disable_monitoring("my-vm")
    assert manager.list_monitored_vms() == ["other-vm"]
    kept = manager.get_monitoring_status("my-vm")
    assert not kept.enabled and kept.config.check_interval_seconds == 90


def test_file_and_directory_modes(tmp_path: Path) -> None:
    path = tmp_path / "newdir" / "lifecycle-config.toml"
    LifecycleManager(path).enable_monitoring("vm1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_hooks_set_and_clear(tmp_path: Path) -> None:
    manager = LifecycleManager(tmp_path / "c.toml")
    manager.enable_monitoring("vm1")
    manager.set_hook("vm1", "on_failure", "https://hooks.example.test/x")
    assert manager.get_monitoring_status("vm1").config.hooks == {
        "on_failure": "https://hooks.example.test/x"
    }
    manager.clear_hook("vm1", "on_failure")
    assert manager.get_monitoring_status("vm1").config.hooks == {}
    with pytest.raises(LifecycleConfigError, match="has no on_failure hook set"):
        manager.clear_hook("vm1", "on_failure")
    with pytest.raises(LifecycleConfigError, match="unknown hook type 'on_boot'"):
        manager.set_hook("vm1", "on_boot", "/bin/true")


def test_update_vm_validates(tmp_path: Path) -> None:
    manager = LifecycleManager(tmp_path / "c.toml")
    manager.enable_monitoring("vm1")
    assert manager.update_vm("vm1", ssh_port=2222).ssh_port == 2222
    with pytest.raises(LifecycleConfigError, match="ssh_port = 0 is not allowed"):
        manager.update_vm("vm1", ssh_port=0)
    assert manager.get_monitoring_status("vm1").config.ssh_port == 2222


def test_unknown_vm_says_how_to_add_it(tmp_path: Path) -> None:
    manager = LifecycleManager(tmp_path / "c.toml")
    with pytest.raises(LifecycleConfigError, match="azlin lifecycle enable ghost"):
        manager.get_monitoring_status("ghost")


def test_invalid_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    broken = "[vms.a]\ncheck_interval_seconds = \n"
    path.write_text(broken)
    manager = LifecycleManager(path)
    with pytest.raises(LifecycleConfigError, match="not valid TOML"):
        manager.enable_monitoring("b")
    assert path.read_text() == broken
    path.write_text("[vms.a]\nrestart_policy = \"bogus\"\n")
    with pytest.raises(LifecycleConfigError, match='restart_policy = "bogus"'):
        manager.enable_monitoring("b")
    assert "bogus" in path.read_text()


def test_failed_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d" / "c.toml"
    manager = LifecycleManager(path)
    manager.enable_monitoring("a")
    before = path.read_text()

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(LifecycleConfigError, match=r"cannot write \(No space left on device\); the old file is unchanged"):
        manager.enable_monitoring("b")
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []
