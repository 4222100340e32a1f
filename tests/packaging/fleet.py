"""A simulated fleet for the packaging smoke tests, run as the harness's test user.

The simulator (stand-in ARM over HTTPS, SSH endpoints, stand-in ``az``) runs from this
checkout's venv: it stands in for Azure and is not what these tests check. The
configuration it needs is written into the user's ``~/.azlin``.
"""

from __future__ import annotations

from typing import Any

from tests.support.real_unit import UNIT, SimulatorProcess, dropin, journal, show
from tests.support.user_session import UserSession

__all__ = ["UNIT", "SimulatedFleet", "journal", "show"]
VMS = 2


class SimulatedFleet:
    """``with SimulatedFleet(session) as fleet:`` — running, with its config written."""

    def __init__(self, session: UserSession) -> None:
        self.session = session
        self.sim = SimulatorProcess(session, vms=VMS)

    @property
    def info(self) -> dict[str, Any]:
        return self.sim.info

    def __enter__(self) -> SimulatedFleet:
        self.sim.start()
        try:
            self.sim.write_config(self.session.home / ".azlin" / "lifecycle-config.toml")
        except BaseException:
            self.sim.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()

    def path_dropin(self) -> None:
        """A drop-in that puts the stand-in ``az`` first on the unit's PATH."""
        dropin(self.session, f"[Service]\nEnvironment=PATH={self.sim.bin_dir}:/usr/bin:/bin\n")

    def remove_dropin(self) -> None:
        self.session.run_as_user(
            ["rm", "-rf", str(self.session.home / f".config/systemd/user/{UNIT}.d")])
        self.session.systemctl("daemon-reload", check=False)
