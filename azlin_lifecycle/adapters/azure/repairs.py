"""Repairs through ARM: restart, start and redeploy, each waited for until its deadline.

:class:`ArmRepairs` runs one action for an :class:`~.compute.ArmCompute`, with that
adapter's per-subscription ``ComputeManagementClient``, its reader and its retrying
:meth:`~.compute.ArmCompute.call`. The caller's ``timeout`` bounds the whole action.

Azure's pace is kept: no status poll goes out sooner than the ``Retry-After`` of the
answer before it — the 202 that accepted the action (the SDK itself polls at once) and
every poll since; ``polling_interval`` applies only when Azure sends none (or 0). A wait
that would pass the deadline is not begun: the poller sleeps to the deadline and stops
there, without a last poll. 429/5xx status polls are retried; the caller stops waiting
for the poller at the deadline in any case. The action's POST is
retried only when Azure certainly did not take it (429). After a 5xx, a timeout or a
dropped connection the VM's instance view is read first: provisioning ``updating`` (or a
power state in transition) means the POST was accepted, and the repair waits for it by
polling the instance view; otherwise it is POSTed again within the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...models import PowerInfo, VMState, VMTarget
from ...ports import Accepted, AzureOperationError
from .errors import (
    RETRY_STATUSES,
    backoff_seconds,
    error_code,
    error_detail,
    error_message,
    request_timeouts,
    retry_after_seconds,
)
from .login import login_error
from .views import power_info_from_view, provisioning_failure

if TYPE_CHECKING:
    from .compute import ArmCompute

TRANSITIONS = frozenset({VMState.STARTING, VMState.STOPPING, VMState.DEALLOCATING})


class ArmRepairs:
    """The long-running actions of one :class:`~.compute.ArmCompute`."""

    def __init__(self, compute: ArmCompute) -> None:
        self.compute = compute
        self._on_accepted: Accepted = None

    def run(self, target: VMTarget, action: str, timeout: float,
            on_accepted: Accepted = None) -> None:
        """Start the long-running ``action`` and wait for it until ``timeout``;
        ``on_accepted()`` once Azure has taken the request."""
        from azure.core.exceptions import AzureError, HttpResponseError

        client = self.compute.client(target.subscription_id)
        what = f"{action} of {target.name}"
        deadline = time.monotonic() + timeout
        begin = getattr(client.virtual_machines, f"begin_{action}")
        interval = self.compute.polling_interval

        def start(kw: dict[str, Any]) -> Any:
            polling = _deadline_polling(interval, deadline, client._config.base_url, kw)
            return begin(target.resource_group, target.name, polling=polling, **kw)

        timed_out = AzureOperationError(
            f"{what} did not finish within {timeout:g} s", "OperationTimedOut"
        )
        self._on_accepted = on_accepted
        poller = self._post_once(target, what, start, timeout, deadline)
        if poller is None:  # accepted although Azure's answer was lost: waited already
            return
        self._accepted_now()
        try:
            poller.wait(timeout=max(deadline - time.monotonic(), 0.0))
            if not poller.done():
                raise timed_out
            poller.result(timeout=0)
        except _LroDeadline:
            raise timed_out from None
        except HttpResponseError as exc:
            raise AzureOperationError(
                f"{what} failed: {error_message(exc)}", error_code(exc), error_detail(exc)
            ) from None
        except AzureError as exc:
            raise AzureOperationError(f"{what} failed: {error_message(exc)}") from None

    def _post_once(self, target: VMTarget, what: str, start: Callable[[dict[str, Any]], Any],
                   timeout: float, deadline: float) -> Any:
        """POST the action; the poller, or None when it turned out accepted and has ended.

        Retried at once only after a 429 (Azure did not take it). After a 5xx, a timeout
        or a dropped connection the instance view decides: accepted (updating, or a
        power state in transition) -> wait for it here; unchanged -> POST again.
        """
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AzureOperationError(f"{what}: no answer from Azure within {timeout:g} s",
                                          "Timeout")
            kw = request_timeouts(left)
            asked: float | None = None
            try:
                return start(kw)
            except ClientAuthenticationError as exc:
                raise login_error(exc, self.compute.settings.credential) from None
            except HttpResponseError as exc:
                status, code = exc.status_code, error_code(exc)
                if status != 429 and status not in RETRY_STATUSES:
                    raise AzureOperationError(f"{what}: {error_message(exc)}", code,
                                              error_detail(exc)) from None
                headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
                asked = retry_after_seconds(headers)
                reason = f"HTTP {status}"
                uncertain = status != 429
            except (ServiceRequestError, ServiceResponseError) as exc:
                reason, code, uncertain = error_message(exc), "ServiceUnavailable", True
            if uncertain and self._accepted(target, what, reason, deadline):
                self._accepted_now()
                self._wait_by_instance_view(target, what, timeout, deadline)
                return None
            wait = backoff_seconds(attempt) if asked is None else asked
            if time.monotonic() + wait >= deadline:
                raise AzureOperationError(
                    f"{what}: Azure did not take it in time ({reason}); gave up within the "
                    f"{timeout:g} s limit", code)
            time.sleep(wait)
            attempt += 1

    def _accepted_now(self) -> None:
        callback, self._on_accepted = self._on_accepted, None
        if callback is not None:
            callback()

    def _view(self, target: VMTarget, what: str, deadline: float) -> dict[str, Any]:
        """The VM's instance view during a repair; every failure is AzureOperationError."""
        from azure.core.exceptions import HttpResponseError

        from .reads import instance_view_path

        compute = self.compute
        reader = compute.reader()
        path = instance_view_path(target.subscription_id, target.resource_group, target.name)
        read = f"instance view of {target.name} during {what}"
        try:
            return compute.call(read, lambda kw: reader.get(path, **kw), compute.timeout, deadline)
        except HttpResponseError as exc:  # 404, 400
            raise AzureOperationError(f"{read}: {error_message(exc)}", error_code(exc)) from None

    def _accepted(self, target: VMTarget, what: str, reason: str, deadline: float) -> bool:
        """Did Azure take the POST that answered ``reason``? Read from the instance view."""
        try:
            info = power_info_from_view(self._view(target, what, deadline))
        except AzureOperationError as exc:
            raise AzureOperationError(
                f"{what}: Azure answered {reason} and the VM's state could not be read "
                f"({exc}); check the VM before repairing it again", exc.code) from None
        return _in_progress(info)

    def _wait_by_instance_view(self, target: VMTarget, what: str, timeout: float,
                               deadline: float) -> None:
        """Poll the instance view until provisioning leaves ``updating``."""
        step = max(self.compute.polling_interval, 0.1)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AzureOperationError(f"{what} did not finish within {timeout:g} s",
                                          "OperationTimedOut")
            time.sleep(min(step, left))
            view = self._view(target, what, deadline)
            if _in_progress(power_info_from_view(view)):
                continue
            failure = provisioning_failure(view)
            if failure is not None:
                code, text = failure
                lines = [ln for ln in text.strip().splitlines() if ln.strip()] or [code]
                raise AzureOperationError(f"{what} failed: {lines[0].strip()}", code,
                                          text.strip() if len(lines) > 1 else None)
            return


def _in_progress(info: PowerInfo) -> bool:
    """An action under way: provisioning ``updating``, or a power state in transition."""
    return info.provisioning_state == "updating" or info.state in TRANSITIONS


class _LroDeadline(Exception):
    """Raised inside the poller thread when the next poll would pass the deadline."""


def _deadline_polling(
    interval: float, deadline: float, base_url: str, transport_kwargs: dict[str, Any]
) -> Any:
    """An ARMPolling that keeps Azure's Retry-After, never sleeps past ``deadline`` and
    retries 429/5xx status polls."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class DeadlinePolling(ARMPolling):
        def _asked(self) -> float | None:
            """The Retry-After of the last answer (the 202, then each poll); 0 is none."""
            asked = retry_after_seconds(self._pipeline_response.http_response.headers)
            return asked or None

        def _wait(self, seconds: float) -> None:
            left = deadline - time.monotonic()
            if seconds >= left:  # the next poll would come after the deadline
                self._sleep(max(left, 0.0))
                raise _LroDeadline("deadline passed")
            if seconds > 0:
                self._sleep(seconds)

        def update_status(self) -> None:
            if self._pipeline_response is self._initial_response:  # the first poll
                self._wait(self._asked() or 0.0)  # the SDK alone would poll at once
            super().update_status()

        def _delay(self) -> None:
            asked = self._asked()
            self._wait(interval if asked is None else asked)

        def request_status(self, status_link: str) -> Any:
            attempt = 0
            while True:
                self._operation_config["read_timeout"] = max(deadline - time.monotonic(), 0.1)
                response = super().request_status(status_link)
                status = response.http_response.status_code
                if status not in RETRY_STATUSES:
                    return response
                asked = retry_after_seconds(response.http_response.headers)
                wait = backoff_seconds(attempt) if asked is None else asked
                if time.monotonic() + wait >= deadline:
                    return response  # the SDK turns it into an error
                time.sleep(wait)
                attempt += 1

    return DeadlinePolling(
        interval, path_format_arguments={"endpoint": base_url}, **transport_kwargs
    )
