"""The daemon's attestations: prove each GPU to the coordinator (docs/attestation.md).

On its own thread, so a self-test (a second or two of the GPU's time, more on a cold driver)
never delays a heartbeat or a lease. It attests a GPU once the host is registered, again every
`[attest] interval_h`, and when a heartbeat answer says an admin asked — never a GPU that holds
a lease (the fill would take the tenant's memory; the coordinator refuses it too) and never a
simulated one (there is nothing to prove). Without a usable libcuda it attests nothing and says
so once: the GPUs then show as not verified, which renters see.

Each attestation is the coordinator's challenge: its seed and fill size, its positions drawn
after the fill (`positions_after_fill` asks for them), then the words, the measured figures and
the agent's NVML checks go back, and the coordinator's verdict is logged (`gpu_attested`).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from agent.attest.checks import identity_record
from agent.attest.host import Cuda, IdentityStore, attest_gpu
from agent.errors import AgentError, CoordinatorRejectedError
from agent.gpu import GpuInfo
from agent.link.client import CoordinatorClient
from agent.link.wire import AttestationAnswer, AttestationCheck
from agent.log import get_logger
from agent.service.runtime import DaemonRuntime
from aitbc_common import gpu_models

log = get_logger("agent.attest")

CHECK_EVERY_S = 60.0  # how often the thread looks for a GPU that is due


class AttestationJob:
    def __init__(self, daemon: DaemonRuntime) -> None:
        self._d = daemon
        self._last: dict[str, float] = {}  # GPU uuid → monotonic time of its last attempt
        self._cuda: Cuda | None = None

    def run(self, stop: threading.Event) -> None:
        # The first round as soon as the host is registered (its GPUs have ids), then one
        # each CHECK_EVERY_S or when a heartbeat answer asks.
        while not self._d.registered_event.wait(1.0):
            if stop.is_set():
                return
        requested = False
        while not stop.is_set():
            try:
                self.attest_due(requested=requested)
            except Exception:  # the thread must outlive a bug in one attestation
                log.exception("attestation_failed_unexpectedly")
            wake = self._d.attest_requested  # set by a heartbeat answer that asks for one
            requested = wake.wait(CHECK_EVERY_S)
            wake.clear()

    def attest_due(self, *, requested: bool) -> int:
        """Attest every GPU that is due (all idle ones when `requested`); how many were."""
        d = self._d
        settings = d.settings.attest
        if d.backend is None or d.backend.kind != "nvml" or not d.registered_event.is_set():
            return 0
        client = d.client
        if client is None:
            return 0
        with d.lock:
            gpus = [g for g in d.gpus if g.uuid and not g.mig_mode]
            ids = dict(d.state.gpu_ids)
        leased = d.worker.active_units() if d.worker is not None else {}
        interval_s = settings.interval_h * 3600
        now = time.monotonic()
        due = [
            g
            for g in gpus
            if g.uuid in ids
            and not leased.get(g.uuid or "")
            and (requested or now - self._last.get(g.uuid or "", -1e18) >= interval_s)
        ]
        if not due:
            return 0
        cuda = self._open_cuda(settings.cuda_library)
        if cuda.driver is None:
            return 0
        identities = IdentityStore(d.settings.agent.state_dir)
        for info in due:
            self._last[info.uuid or ""] = now
            self._attest(client, cuda, identities, info, ids[info.uuid or ""])
        identities.save()
        return len(due)

    def _open_cuda(self, library: str) -> Cuda:
        if self._cuda is None:
            self._cuda = Cuda.open(library)
            if self._cuda.driver is None:
                log.warning("attestation_unavailable", reason=self._cuda.error)
        return self._cuda

    def _attest(
        self,
        client: CoordinatorClient,
        cuda: Cuda,
        identities: IdentityStore,
        info: GpuInfo,
        gpu_id: str,
    ) -> None:
        try:
            challenge = client.open_attestation(gpu_id)
        except CoordinatorRejectedError as exc:
            log.info("attestation_refused", gpu_id=gpu_id, status_code=exc.status_code)
            return
        except AgentError as exc:
            log.warning("attestation_not_started", gpu_id=gpu_id, error=str(exc))
            return
        att = attest_gpu(
            info,
            table=gpu_models.load(),
            cuda=cuda,
            previous=identities.get(info.uuid),
            seed=int(challenge.seed, 16),
            positions_after_fill=lambda _words: client.attestation_filled(challenge.attestation_id),
            fill_fraction=self._d.settings.attest.fill_fraction,
            words=challenge.words,
        )
        if info.uuid:
            identities.put(info.uuid, identity_record(info, datetime.now(UTC).isoformat()))
        answer = att.answer
        answer_body = AttestationAnswer(
            values=[str(v) for v in answer.values] if answer else [],
            fp32_tflops=answer.fp32_tflops if answer else 0.0,
            memory_tbps=answer.copy_tbps if answer else 0.0,
            checks=[AttestationCheck(name=c.name, ok=c.ok, reason=c.reason) for c in att.checks],
        )
        try:
            if answer is None:
                # The self-test did not run to its end: the positions were never asked for,
                # so ask now and answer nothing; the verdict records why (the agent's checks).
                client.attestation_filled(challenge.attestation_id)
            verdict = client.attestation_answer(challenge.attestation_id, answer_body)
        except AgentError as exc:
            log.warning("attestation_not_answered", gpu_id=gpu_id, error=str(exc))
            return
        (log.info if verdict.verified else log.warning)(
            "gpu_attested",
            gpu_id=gpu_id,
            uuid=info.uuid,
            index=info.index,
            verified=verdict.verified,
            reason=verdict.reason,
            **att.measured,
        )
