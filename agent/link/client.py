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
from collections.abc import Mapping
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

MAX_WAIT_S = 30
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
    """A synchronous client of the coordinator, safe to share between threads."""

    def __init__(
        self,
        base_url: str,
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
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = headers
        self._transport = transport
        self._http = self._new_client()
        self._poll_lock = threading.Lock()
        self._poll_http = self._new_client()
        self._closed = False

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
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
        http = client or self._http
        what = f"{method} {path}"
        try:
            response = http.request(
                method,
                path,
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
        if response.status_code >= 400:
            detail = _detail_of(response)
            raise CoordinatorRejectedError(
                f"{what}: HTTP {response.status_code}" + (f" ({detail})" if detail else ""),
                status_code=response.status_code,
                detail=detail,
                retry_after_s=_retry_after_s(response),
            )
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
