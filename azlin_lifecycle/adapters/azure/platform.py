"""ArmSignals: :class:`azlin_lifecycle.ports.AzureSignals` over ARM, sharing one
:class:`~.compute.ArmCompute`'s pipeline, credential, clients and throttling rules.

Resource Health is :mod:`.resource_health`; the post-mortem is :mod:`.boot_diagnostics`,
run here on a thread of its own so that the repair waiting for it waits no longer than its
time box, whatever the network does (a name lookup, a TLS handshake, a blob server that
stops answering): past the box the capture is abandoned — it writes nothing more — and
the repair goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import HealthCheckError
from ...models import VMTarget
from ...ports import AzureOperationError
from ...signals import Capture, PlatformHealth

if TYPE_CHECKING:
    from .compute import ArmCompute

log = logging.getLogger(__name__)

# The capture's own deadline comes this much before the box closes, so that what it
# caught by then is handed over rather than abandoned.
HANDOVER = 0.25


class ArmSignals:
    def __init__(self, compute: ArmCompute) -> None:
        self.compute = compute

    def platform_health(self, target: VMTarget) -> PlatformHealth:
        from .resource_health import read_platform_health

        return read_platform_health(self.compute, target)

    def capture(self, target: VMTarget, directory: Path, seconds: float) -> Capture:
        from .boot_diagnostics import capture

        began = time.monotonic()
        box_closes = began + seconds
        cancelled = threading.Event()
        caught: list[Capture] = []

        def work() -> None:
            try:
                caught.append(capture(self.compute, target, directory,
                                      box_closes - min(HANDOVER, seconds / 4), cancelled))
            except (AzureOperationError, HealthCheckError) as exc:  # Azure's words, the login
                caught.append(Capture(directory, None, None, f"no capture: {exc}",
                                      seconds=time.monotonic() - began))
            except Exception as exc:  # a bug: no capture, no failure; its text may hold a URL
                log.error("%s: the post-mortem failed (%s)", target.name, type(exc).__name__)
                caught.append(Capture(directory, None, None,
                                      f"no capture: {type(exc).__name__}",
                                      seconds=time.monotonic() - began))

        worker = threading.Thread(target=work, name=f"capture-{target.name}"[:40], daemon=True)
        worker.start()
        worker.join(max(box_closes - time.monotonic(), 0.0))
        if caught:
            return caught[0]
        cancelled.set()
        return Capture(directory, None, None,
                       f"no capture: boot diagnostics did not answer within {seconds:g} s "
                       "(the repair went ahead)", seconds=time.monotonic() - began)


if TYPE_CHECKING:
    from ...ports import AzureSignals

    def _conforms(signals: ArmSignals) -> AzureSignals:  # mypy checks the protocol
        return signals
