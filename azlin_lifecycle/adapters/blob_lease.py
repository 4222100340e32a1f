"""The lease blob in Azure Blob Storage (azure-storage-blob): the leader's lease, and the
shared repair ledger as its content.

Every call has one deadline (connect and read timeouts, no SDK retries): a monitor cut
off from storage must know within a third of its lease, so it stops repairing before
its lease can expire. Errors are one line naming the blob and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import CredentialKind, HaSettings
from ..ports import CoordinationError, LeasedDocument, LeaseHolder, LeaseLost
from .azure.login import login_error

# Azurite's development account, published in its README; config allows it only for a
# loopback account_url (tests and the demo).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
AZURITE_CREDENTIAL = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}

# Error codes of the Blob service (REST reference, "Blob Service Error Codes").
LEASE_TAKEN = frozenset({"LeaseAlreadyPresent"})
NOT_MY_LEASE = frozenset({"LeaseIdMismatchWithLeaseOperation", "LeaseIdMismatchWithBlobOperation",
                          "LeaseLost", "LeaseNotPresentWithLeaseOperation",
                          "LeaseNotPresentWithBlobOperation", "LeaseIdMissing"})
MISSING = frozenset({"BlobNotFound", "ContainerNotFound"})


class BlobLeaseStore:
    """:class:`~azlin_lifecycle.ports.LeaseStore` on one block blob."""

    def __init__(self, settings: HaSettings, credential: Any, *, timeout: float,
                 login: CredentialKind | None = None) -> None:
        """``login``: the kind of ``credential`` when it is an Azure login (for its errors)."""
        from azure.storage.blob import BlobServiceClient

        assert settings.account_url
        self.where = f"{settings.account_url}/{settings.container}/{settings.blob}"
        self.timeout = timeout
        self._login = login
        self._service = BlobServiceClient(
            settings.account_url, credential=credential, retry_total=0,
            connection_timeout=timeout, read_timeout=timeout)
        self._container = self._service.get_container_client(settings.container)
        self._blob = self._container.get_blob_client(settings.blob)

    # ------------------------------------------------------------------ the lease
    def acquire(self, lease_id: str, seconds: int) -> bool:
        for first in (True, False):
            try:
                self._lease(lease_id).acquire(lease_duration=seconds)
                return True
            except Exception as exc:
                code = _code(exc)
                if code in LEASE_TAKEN:
                    return False
                if code in MISSING and first:
                    self._create()
                    continue
                raise self._error("taking the lease", exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def renew(self, lease_id: str) -> None:
        try:
            self._lease(lease_id).renew()
        except Exception as exc:
            if _code(exc) in NOT_MY_LEASE | MISSING:
                raise LeaseLost(f"the lease on {self.where} is no longer this monitor's "
                                f"({_code(exc)}): another monitor leads now") from None
            raise self._error("renewing the lease", exc) from None

    def release(self, lease_id: str) -> None:
        try:
            self._lease(lease_id).release()
        except Exception as exc:
            if _code(exc) in NOT_MY_LEASE | MISSING:
                return  # not ours any more: nothing to give back
            raise self._error("releasing the lease", exc) from None

    def holder(self) -> LeaseHolder:
        try:
            props = self._blob.get_blob_properties()
        except Exception as exc:
            if _code(exc) in MISSING or getattr(exc, "status_code", None) == 404:
                return LeaseHolder(leased=False, metadata={})
            raise self._error("reading who holds the lease", exc) from None
        return LeaseHolder(leased=props.lease.state == "leased", metadata=dict(props.metadata))

    # ------------------------------------------------------------------ the ledger
    def read(self) -> LeasedDocument:
        try:
            download = self._blob.download_blob()
            content = download.readall()
        except Exception as exc:
            raise self._error("reading the shared ledger", exc) from None
        return LeasedDocument(content=bytes(content), etag=str(download.properties.etag))

    def write(self, content: bytes, *, lease_id: str, etag: str,
              metadata: Mapping[str, str]) -> str:
        from azure.core import MatchConditions

        try:
            answer = self._blob.upload_blob(
                content, overwrite=True, lease=self._lease(lease_id), etag=etag,
                match_condition=MatchConditions.IfNotModified, metadata=dict(metadata))
        except Exception as exc:
            code = _code(exc)
            if code == "ConditionNotMet":
                raise LeaseLost(f"the shared ledger {self.where} changed since this monitor "
                                "read it (ETag condition failed): not written") from None
            if code in NOT_MY_LEASE:
                raise LeaseLost(f"the lease on {self.where} is no longer this monitor's "
                                f"({code}): the shared ledger was not written") from None
            raise self._error("writing the shared ledger", exc) from None
        return str(answer["etag"])

    def close(self) -> None:
        self._service.close()

    # ------------------------------------------------------------------ helpers
    def _lease(self, lease_id: str) -> Any:
        from azure.storage.blob import BlobLeaseClient

        return BlobLeaseClient(self._blob, lease_id=lease_id)

    def _create(self) -> None:
        """The container and an empty lease blob, when either is missing."""
        from azure.core.exceptions import ResourceExistsError

        for create in (self._container.create_container,
                       lambda: self._blob.upload_blob(b"", overwrite=False)):
            try:
                create()
            except ResourceExistsError:
                pass  # another monitor made it first: what we wanted
            except Exception as exc:
                raise self._error("creating the lease blob", exc) from None

    def _error(self, what: str, exc: BaseException) -> CoordinationError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )

        detail = _first_line(exc)
        if isinstance(exc, ServiceRequestError):
            return CoordinationError(f"storage {self.where} unreachable while {what}: {detail}")
        if isinstance(exc, ServiceResponseError):
            return CoordinationError(f"storage {self.where} gave no answer while {what} "
                                     f"({detail}; limit {self.timeout:g}s)")
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError) and status is None and self._login:
            return CoordinationError(f"storage {self.where}: no token while {what}: "
                                     f"{login_error(exc, self._login)}")
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return CoordinationError(
                f"storage {self.where} refused the credential while {what} "
                f"({_code(exc) or status}): give the monitor's identity the Storage Blob "
                "Data Contributor role on the container, or check [ha] credential")
        if status is not None:
            return CoordinationError(f"storage {self.where} answered {status} "
                                     f"{_code(exc) or ''} while {what}: {detail}")
        return CoordinationError(f"storage {self.where} failed while {what}: "
                                 f"{type(exc).__name__}: {detail}")


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return None if code is None else str(getattr(code, "value", code))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
