"""`aitbc-agent attest`: attest this host's GPUs without a coordinator and print the verdicts.

The challenge is local (a fresh seed, positions drawn after the fill), so this proves to the
operator what the coordinator's attestation would find. Exit 0 when every GPU attested is
verified, 1 when any is not.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.attest.host import Cuda, GpuAttestation, IdentityStore, attest_host
from agent.config import AgentSettings
from agent.gpu import make_backend
from aitbc_common import gpu_models

NOT_VERIFIED = 1


def attest_command(
    settings: AgentSettings,
    *,
    as_json: bool,
    only: list[int] | None,
    refuse: Mapping[str, str],
) -> int:
    backend = make_backend(settings.gpu, settings.health)
    system = backend.open()
    try:
        gpus = [g for g in backend.gpus() if only is None or g.index in only]
    finally:
        backend.close()
    cuda = Cuda.open(settings.attest.cuda_library)
    attested_at = datetime.now(UTC).isoformat()
    results = attest_host(
        gpus,
        table=gpu_models.load(),
        cuda=cuda,
        identities=IdentityStore(settings.agent.state_dir),
        fill_fraction=settings.attest.fill_fraction,
        refuse=refuse,
        attested_at=attested_at,
    )
    doc: dict[str, Any] = {
        "attested_at": attested_at,
        "backend": backend.kind,
        "driver_version": system.driver_version,
        "cuda_driver_version": cuda.driver.version() if cuda.driver is not None else None,
        "gpus": [r.as_json() for r in results],
    }
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print(results)
    sys.stdout.flush()
    return 0 if results and all(r.verified for r in results) else NOT_VERIFIED


def _print(results: list[GpuAttestation]) -> None:
    out = sys.stdout
    if not results:
        out.write("no GPUs to attest\n")
    for r in results:
        verdict = "verified" if r.verified else "NOT verified"
        out.write(f"GPU {r.index}  {r.name or '—'}  {r.uuid or '—'}: {verdict}\n")
        for c in r.checks:
            mark = "ok  " if c.ok else "FAIL"
            out.write(f"  {mark} {c.name}: {c.reason}\n")
