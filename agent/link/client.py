"""CoordinatorClient: the miner protocol over httpx, with HTTP trouble turned into AgentErrors.

Transport errors, timeouts and 5xx become `CoordinatorUnavailableError` (retry later with
backoff); any 4xx becomes `CoordinatorRejectedError` carrying the status and the coordinator's
`detail`. The API key travels only in the `X-Api-Key` header and never appears in an error
message or a log line.

The lease long poll uses its own connection pool, so `abort_long_poll()` from another thread
(SIGTERM) can close it without touching the client the heartbeat uses.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.link.wire import (
    AttestationAnswer,
    AttestationChallenge,
    AttestationPositions,
    AttestationVerdict,
    GpuRegisterRequest,
    GpuRegisterResponse,
    GpuRegistration,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaseAckRequest,
    LeaseAckState,
    LeasesResponse,
    MinerRegisterRequest,
    MinerRegisterResponse,
)
from agent.log import get_logger

MAX_WAIT_S = 30
log = get_logger("agent.coordinator")
_R = TypeVar("_R", bound=BaseModel)


def _detail_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail[:500]
    return None if detail is None else str(detail)[:500]


def _retry_after_s(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds from now (delta-seconds or an HTTP date), else None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class CoordinatorClient:
    """A synchronous client of the coordinator, safe to share between threads.

    Given several base URLs (coordinator processes on one database), it uses the first and
    fails over to the next when a request meets a connection error, a timeout or a 5xx: that
    request is tried once more there at once, and later ones stay there. `FAILBACK_S` after
    leaving the first, a request tries the first again. Every coordinator of the list must
    serve the same database: the lease versions and bookings the agent holds are its.
    """

    FAILBACK_S = 60.0

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key: str | None,
        miner_id: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "aitbc-agent"}
        if api_key:
            headers["X-Api-Key"] = api_key
        if miner_id:
            headers["X-Miner-ID"] = miner_id
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("a coordinator client needs at least one URL")
        self.base_urls = [u.rstrip("/") for u in urls]
        self._active = 0
        self._failback_at = 0.0
        self._url_lock = threading.Lock()
        self.timeout_s = timeout_s
        self._headers = headers
        self._transport = transport
        self._http = self._new_client()
        self._poll_lock = threading.Lock()
        self._poll_http = self._new_client()
        self._closed = False

    @property
    def base_url(self) -> str:
        """The coordinator requests go to now."""
        with self._url_lock:
            if self._active and time.monotonic() >= self._failback_at:
                log.info("coordinator_failback", url=self.base_urls[0])
                self._active = 0
            return self.base_urls[self._active]

    def _fail_over(self, failed_url: str, reason: str) -> str | None:
        """Move on from `failed_url`; the URL to try next, or None with only one."""
        if len(self.base_urls) == 1:
            return None
        with self._url_lock:
            if self.base_urls[self._active] == failed_url:  # not already moved by another thread
                self._active = (self._active + 1) % len(self.base_urls)
                if self._active:
                    self._failback_at = time.monotonic() + self.FAILBACK_S
                log.warning(
                    "coordinator_failover",
                    failed=failed_url,
                    now=self.base_urls[self._active],
                    reason=reason,
                )
            return self.base_urls[self._active]

    def _new_client(self) -> httpx.Client:
        # No base_url: each request names its coordinator (failover switches between them).
        return httpx.Client(
            headers=self._headers,
            timeout=httpx.Timeout(self.timeout_s),
            transport=self._transport,
            follow_redirects=False,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        what = f"{method} {path}"
        url = self.base_url
        try:
            response = self._send(method, url, path, body, params, timeout_s, client)
        except CoordinatorUnavailableError as exc:
            if self._closed:
                raise
            other = self._fail_over(url, str(exc))
            if other is None or other == url:
                raise
            response = self._send(method, other, path, body, params, timeout_s, client)
        if response.status_code >= 400:
            detail = _detail_of(response)
            raise CoordinatorRejectedError(
                f"{what}: HTTP {response.status_code}" + (f" ({detail})" if detail else ""),
                status_code=response.status_code,
                detail=detail,
                retry_after_s=_retry_after_s(response),
            )
        return response

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: BaseModel | None,
        params: Mapping[str, Any] | None,
        timeout_s: float | None,
        client: httpx.Client | None,
    ) -> httpx.Response:
        """One request to one coordinator; its connection errors, timeouts and 5xx raise
        `CoordinatorUnavailableError` (what failover acts on)."""
        http = client or self._http
        what = f"{method} {path}"
        try:
            response = http.request(
                method,
                url + path,
                json=None if body is None else body.model_dump(mode="json", exclude_none=False),
                params=params,
                timeout=None if timeout_s is None else httpx.Timeout(timeout_s),
            )
        except httpx.TimeoutException as exc:
            raise CoordinatorUnavailableError(f"{what}: timed out") from exc
        except (httpx.TransportError, RuntimeError) as exc:
            # RuntimeError: the client was closed under us (abort_long_poll during shutdown).
            raise CoordinatorUnavailableError(f"{what}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise CoordinatorUnavailableError(f"{what}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _parse(response: httpx.Response, model: type[_R]) -> _R:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            path = response.request.url.path
            raise CoordinatorUnavailableError(
                f"{path}: unexpected response ({exc.error_count()} problems)"
            ) from exc

    # -- the protocol -----------------------------------------------------------------------

    def register_miner(self, request: MinerRegisterRequest) -> MinerRegisterResponse:
        """`POST /v1/miners/register`."""
        response = self._request("POST", "/v1/miners/register", body=request)
        return self._parse(response, MinerRegisterResponse)

    def register_gpu(self, gpu: GpuRegistration) -> GpuRegisterResponse:
        """`POST /v1/marketplace/gpu/register` (idempotent on the GPU's uuid)."""
        body = GpuRegisterRequest(gpu=gpu)
        response = self._request("POST", "/v1/marketplace/gpu/register", body=body)
        return self._parse(response, GpuRegisterResponse)

    def heartbeat(self, request: HeartbeatRequest) -> HeartbeatResponse:
        """`POST /v1/miners/heartbeat`; a 404 means "register again"."""
        response = self._request("POST", "/v1/miners/heartbeat", body=request)
        return self._parse(response, HeartbeatResponse)

    def leases(self, *, since: int | None, wait_s: float) -> LeasesResponse:
        """The lease long poll: returns when the lease set changed after `since` or `wait_s`."""
        wait_s = max(0.0, min(float(MAX_WAIT_S), wait_s))
        params: dict[str, Any] = {"wait_s": f"{wait_s:g}"}
        if since is not None:
            params["since"] = since
        with self._poll_lock:
            client = self._poll_http
        response = self._request(
            "GET",
            "/v1/miners/leases",
            params=params,
            timeout_s=wait_s + self.timeout_s,
            client=client,
        )
        return self._parse(response, LeasesResponse)

    def ack(
        self, booking_id: str, *, generation: int, state: LeaseAckState, detail: str | None = None
    ) -> None:
        """`POST /v1/miners/leases/{booking_id}/ack`; a stale generation is a 409."""
        body = LeaseAckRequest(generation=generation, state=state, detail=detail)
        self._request("POST", f"/v1/miners/leases/{booking_id}/ack", body=body)

    def open_attestation(self, gpu_id: str) -> AttestationChallenge:
        """`POST /v1/miners/gpus/{gpu_id}/attestations` (409: the GPU is booked)."""
        response = self._request("POST", f"/v1/miners/gpus/{gpu_id}/attestations")
        return self._parse(response, AttestationChallenge)

    def attestation_filled(self, attestation_id: str) -> list[int]:
        """The fill is done: the positions to read back."""
        path = f"/v1/miners/attestations/{attestation_id}/filled"
        return self._parse(self._request("POST", path), AttestationPositions).positions

    def attestation_answer(
        self, attestation_id: str, answer: AttestationAnswer
    ) -> AttestationVerdict:
        """The words and figures: the coordinator's verdict."""
        path = f"/v1/miners/attestations/{attestation_id}/answer"
        return self._parse(self._request("POST", path, body=answer), AttestationVerdict)

    def deregister(self, miner_id: str, *, timeout_s: float | None = None) -> None:
        """`DELETE /v1/miners/{miner_id}`: graceful leave, the GPUs go offline at once."""
        self._request("DELETE", f"/v1/miners/{miner_id}", timeout_s=timeout_s)

    def uses_api_key(self, api_key: str | None) -> bool:
        """True when this client sends `api_key` (a reload compares keys, never logs them)."""
        mine = (self._headers.get("X-Api-Key") or "").encode()
        return hmac.compare_digest(mine, (api_key or "").encode())

    def abort_long_poll(self) -> None:
        """Close the long poll's connections so a waiting poll fails fast (any thread)."""
        with self._poll_lock:
            old, self._poll_http = self._poll_http, self._new_client()
        old.close()

    def close(self) -> None:
        """Close both connection pools; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._http.close()
        with self._poll_lock:
            self._poll_http.close()
