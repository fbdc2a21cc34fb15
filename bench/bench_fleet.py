"""Fleet simulator: N hosts of G GPUs heartbeating into one or more coordinators, renters
booking and releasing, leases delivered and acknowledged like the agent does it.

Protocol (docs/scale.md):
- The fleet (miners, their keys, their GPUs) is written straight into the database first, so
  the run measures the steady state, not N times G registrations.
- Each host heartbeats every `--interval` s (±10 % jitter, random phase) with its G GPU reports,
  built with the agent's own wire models (`agent.link.wire.HeartbeatRequest`), over real
  HTTP/1.1 keep-alive connections (a pool of `--connections` per coordinator). Heartbeats go
  over raw asyncio streams, as in bench_heartbeat.py: httpx costs the load generator about
  1.5 ms of CPU a request, which on two shared cores would measure the client, not the
  server. Renters' calls and acks use httpx. Hosts are spread over the coordinators
  round-robin.
- Renters book a random GPU at `--book-rate` per second and release it 10 s later. A lease
  is delivered when its host's next heartbeat answer lists it; the host acks `started` at
  once. Lease delivery = booking answered → the ack accepted. The simulated hosts hold no
  lease long poll (10 000 open polls would need as many sockets in this one process), so this
  is the agent's fallback path, bounded by the interval; the long poll's own latency (p50
  ~30 ms) is bench_lease_latency.py's.
- Latency is measured from each heartbeat's scheduled time (open loop): a stall counts fully.
- The first interval is warm-up (each host's first heartbeat: its key is looked up once per
  process); `--duration` seconds of steady state are measured after it.

Prints one JSON document: offered vs achieved heartbeats/s, p50/p99 latency, lease delivery
p50/p99, errors by kind, the coordinators' CPU (cores, and per heartbeat: all their work
divided by the heartbeats), and their CPU with the fleet in the database but idle.

    .venv/bin/python bench/bench_fleet.py --hosts 1000 --duration 30
    scripts/with-postgres.sh .venv/bin/python bench/bench_fleet.py --hosts 5000 --coordinators 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_heartbeat import Connection
from bench_support import free_port, miner_row, start_coordinator, stop

from agent.link.wire import AgentIdentity, GpuReport, HeartbeatRequest

ADMIN_KEY = "bench-admin-key-0123456789abcdef01234"
IDLE_PROBE_S = 3.0
CLIENT_KEY = "bench-client-key-0123456789abcdef0123"


def key_of(host: int) -> str:
    return f"bench-miner-{host:06d}-key-0123456789abcdef"


def populate(url: str, hosts: int, gpus: int) -> list[list[str]]:
    """Miners, miner keys and GPUs, straight into the database; the GPU ids per host."""
    from sqlalchemy import insert

    from coordinator_stub.auth import hash_key
    from coordinator_stub.db.engine import Database
    from coordinator_stub.db.migrate import prepare_for_serve
    from coordinator_stub.db.models import ApiKey, Gpu, Miner

    now = datetime.now(UTC)
    db = Database(url)
    prepare_for_serve(db)
    ids = [[f"gpu_{h:08x}{g:08x}" for g in range(gpus)] for h in range(hosts)]
    miners = [miner_row(f"host-{h:06d}", now) for h in range(hosts)]
    keys = [
        {
            "key_hash": hash_key(key_of(h)),
            "role": "miner",
            "subject": f"host-{h:06d}",
            "created_at": now,
            "key_id": f"key_{h:016x}",
        }
        for h in range(hosts)
    ]
    rows = [
        {
            "id": ids[h][g],
            "miner_id": f"host-{h:06d}",
            "uuid": f"GPU-{h:08x}-0000-0000-0000-{g:012x}",
            "model": "NVIDIA H100 80GB HBM3",
            "memory_gb": 80,
            "memory_mib": 81559,
            "capabilities": ["cuda"],
            "price_per_hour": Decimal("0.5"),
            "health": "ok",
            "rating_sum": 0,
            "total_reviews": 0,
            "created_at": now,
            "updated_at": now,
        }
        for h in range(hosts)
        for g in range(gpus)
    ]
    for table, values in ((Miner, miners), (ApiKey, keys), (Gpu, rows)):
        for start in range(0, len(values), 5000):
            with db.write() as session:
                session.execute(insert(table), values[start : start + 5000])
    db.dispose()
    return ids


class BodyConnection(Connection):
    """A keep-alive connection that also returns the answer's body."""

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(head[9:12]), await self.reader.readexactly(length)


def heartbeat_request(port: int, host: int, gpu_ids: list[str], seq: int) -> bytes:
    body = heartbeat_body(host, gpu_ids, seq)
    head = (
        f"POST /v1/miners/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"X-Api-Key: {key_of(host)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def heartbeat_body(host: int, gpu_ids: list[str], seq: int) -> bytes:
    request = HeartbeatRequest(
        agent=AgentIdentity(instance_id=f"sim-{host}", seq=seq, version="sim"),
        gpus=[
            GpuReport(
                gpu_id=gid,
                uuid=f"GPU-{host:08x}-0000-0000-0000-{g:012x}",
                health="ok",
                utilization_pct=random.uniform(0, 100),
                memory_used_mib=random.uniform(0, 80000),
                temperature_c=random.uniform(30, 80),
                power_draw_w=random.uniform(100, 700),
            )
            for g, gid in enumerate(gpu_ids)
        ],
    )
    return request.model_dump_json(exclude_none=True).encode()


class Fleet:
    def __init__(
        self, args: argparse.Namespace, bases: list[str], ids: list[list[str]], pids: list[int]
    ) -> None:
        self.args = args
        self.pids = pids
        self.cpu_at_start = 0.0  # the coordinators' CPU seconds when measuring began
        self.own_cpu_at_start = 0.0
        self.measured_s = 0.0
        self.bases = bases
        self.ids = ids
        self.latencies: list[float] = []
        self.delivery: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.pending: dict[str, tuple[int, float]] = {}  # booking id → (host, answered at)
        self.acked: set[str] = set()
        self.booked_hosts: set[int] = set()  # only their heartbeat answers are parsed
        self.sent = 0

    async def run(self) -> None:
        self.pools: list[asyncio.Queue[BodyConnection]] = []
        for base in self.bases:
            port = int(base.rsplit(":", 1)[1])
            pool: asyncio.Queue[BodyConnection] = asyncio.Queue()
            for _ in range(self.args.connections):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                pool.put_nowait(BodyConnection(reader, writer))
            self.pools.append(pool)
        # Three heartbeats per host, built ahead (the agent's own models), sent in turn.
        self.requests = [
            [
                heartbeat_request(int(self.bases[h % len(self.bases)].rsplit(":", 1)[1]), h, g, s)
                for s in range(3)
            ]
            for h, g in enumerate(self.ids)
        ]
        async with httpx.AsyncClient(timeout=30) as http:
            self.http = http
            # One interval of warm-up: every host's first heartbeat (its key looked up once
            # per process, its connection's first use) is not the steady state being measured.
            self.measure_from = time.monotonic() + self.args.interval
            end = self.measure_from + self.args.duration
            tasks = [asyncio.create_task(self._host(h, end)) for h in range(len(self.ids))]
            tasks.append(asyncio.create_task(self._renters(end)))
            tasks.append(asyncio.create_task(self._start_measuring()))
            await asyncio.gather(*tasks)
            self.measured_s = time.monotonic() - self.measure_from
        for pool in self.pools:
            while not pool.empty():
                pool.get_nowait().close()

    async def _start_measuring(self) -> None:
        await asyncio.sleep(self.measure_from - time.monotonic())
        self.cpu_at_start = sum(cpu_s(pid) for pid in self.pids)
        self.own_cpu_at_start = cpu_s(os.getpid())

    async def _host(self, host: int, end: float) -> None:
        which = host % len(self.bases)
        base, pool = self.bases[which], self.pools[which]
        headers = {"X-Api-Key": key_of(host), "Content-Type": "application/json"}
        interval = self.args.interval
        due = time.monotonic() + random.uniform(0, interval)
        seq = 0
        while due < end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            seq += 1
            conn = await pool.get()  # a heartbeat that finds no idle connection waits
            try:
                status, body = await conn.call(self.requests[host][seq % 3])
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.errors[f"heartbeat {type(exc).__name__}"] += 1
                continue
            finally:
                pool.put_nowait(conn)
            measured = due >= self.measure_from
            self.sent += measured
            if status != 200:
                self.errors[f"heartbeat HTTP {status}"] += 1
            elif measured:
                self.latencies.append(time.monotonic() - due)
                if host in self.booked_hosts:
                    await self._ack_new(base, headers, json.loads(body))
            due += interval * random.uniform(0.9, 1.1)

    async def _ack_new(self, base: str, headers: dict[str, str], answer: dict[str, Any]) -> None:
        for lease in answer.get("leases") or []:
            bid = lease["booking_id"]
            if lease["state"] != "active" or bid in self.acked or bid not in self.pending:
                continue
            self.acked.add(bid)
            resp = await self.http.post(
                f"{base}/v1/miners/leases/{bid}/ack",
                json={"generation": lease["generation"], "state": "started"},
                headers=headers,
            )
            if resp.status_code == 200:
                self.delivery.append(time.monotonic() - self.pending[bid][1])
            else:
                self.errors[f"ack HTTP {resp.status_code}"] += 1

    async def _renters(self, end: float) -> None:
        if self.args.book_rate <= 0:
            return
        auth = {"X-Api-Key": CLIENT_KEY}
        base = self.bases[0]
        await self.http.post(
            f"{base}/v1/admin/accounts/bench-renter/credit",
            json={"amount": "1000000"},
            headers={"X-Api-Key": ADMIN_KEY},
        )
        releases: list[asyncio.Task[None]] = []
        await asyncio.sleep(self.measure_from - time.monotonic())
        while time.monotonic() < end - 12:
            await asyncio.sleep(random.expovariate(self.args.book_rate))
            host = random.randrange(len(self.ids))
            gpu = random.choice(self.ids[host])
            resp = await self.http.post(
                f"{base}/v1/marketplace/gpu/{gpu}/book", json={"duration_hours": 0.5}, headers=auth
            )
            if resp.status_code == 201:
                self.pending[resp.json()["booking_id"]] = (host, time.monotonic())
                self.booked_hosts.add(host)
                releases.append(asyncio.create_task(self._release_later(base, gpu, auth)))
            elif resp.status_code != 409:  # 409: already booked, a renter's race
                self.errors[f"book HTTP {resp.status_code}"] += 1
        await asyncio.gather(*releases)

    async def _release_later(self, base: str, gpu: str, auth: dict[str, str]) -> None:
        await asyncio.sleep(10)
        resp = await self.http.post(f"{base}/v1/marketplace/gpu/{gpu}/release", headers=auth)
        if resp.status_code != 200:
            self.errors[f"release HTTP {resp.status_code}"] += 1


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--coordinators", type=int, default=1, help="processes (>1: PostgreSQL)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL even with one")
    parser.add_argument("--book-rate", type=float, default=2.0, help="bookings per second")
    parser.add_argument(
        "--connections", type=int, default=64, help="keep-alive connections per coordinator"
    )
    args = parser.parse_args()
    pg = os.environ.get("TEST_POSTGRES_URL")
    args.postgres = args.postgres or args.coordinators > 1
    if args.postgres and not pg:
        print(
            "bench_fleet: several coordinators need PostgreSQL (scripts/with-postgres.sh)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            from tests.support import fresh_postgres_database

            url = fresh_postgres_database()
        else:
            url = f"sqlite:///{tmp}/fleet.db"
        started = time.perf_counter()
        ids = populate(url, args.hosts, args.gpus)
        populate_s = time.perf_counter() - started
        env = {
            "COORDINATOR_DATABASE_URL": url,
            "COORDINATOR_BOOTSTRAP_KEYS": f"admin:ops:{ADMIN_KEY},client:bench-renter:{CLIENT_KEY}",
            "COORDINATOR_HEARTBEAT_INTERVAL_S": str(args.interval),
            "COORDINATOR_OFFLINE_AFTER_S": str(args.interval * 3),
            "COORDINATOR_MAX_CONNECTIONS": "8192",
        }
        ports = [free_port() for _ in range(args.coordinators)]
        procs = [start_coordinator(env, port=port) for port in ports]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            # The coordinators' own background work (sweeper, key and lease watches) with the
            # whole fleet in the database and nobody calling, before the load starts.
            idle_before = [cpu_s(p.pid) for p in procs]
            time.sleep(IDLE_PROBE_S)
            idle_cpu = sum(cpu_s(p.pid) - b for p, b in zip(procs, idle_before, strict=True))
            fleet = Fleet(args, bases, ids, [p.pid for p in procs])
            asyncio.run(fleet.run())
            wall = fleet.measured_s
            server_cpu = sum(cpu_s(p.pid) for p in procs) - fleet.cpu_at_start
            own_cpu = cpu_s(os.getpid()) - fleet.own_cpu_at_start
        finally:
            for p in procs:
                stop(p)
    offered = args.hosts / args.interval
    achieved = len(fleet.latencies) / wall
    doc = {
        "benchmark": "fleet",
        "hosts": args.hosts,
        "gpus_per_host": args.gpus,
        "gpus": args.hosts * args.gpus,
        "coordinators": args.coordinators,
        "database": "postgresql" if args.postgres else "sqlite",
        "interval_s": args.interval,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "populate_s": round(populate_s, 1),
        "heartbeats": {
            "offered_per_s": round(offered, 1),
            "achieved_per_s": round(achieved, 1),
            "p50_ms": pct(fleet.latencies, 0.5),
            "p99_ms": pct(fleet.latencies, 0.99),
            # All the coordinators' CPU (heartbeats, renters, acks, background) per heartbeat.
            "server_cpu_ms_per_heartbeat": round(server_cpu / max(1, fleet.sent) * 1000, 3),
        },
        "server_cpu_cores": round(server_cpu / wall, 3),
        "idle_cpu_cores": round(idle_cpu / IDLE_PROBE_S, 3),
        # At 1.0 the simulator itself is the bottleneck (one process, one core).
        "load_generator_cpu_cores": round(own_cpu / wall, 3),
        "leases": {
            "booked": len(fleet.pending),
            "delivered": len(fleet.delivery),
            "p50_ms": pct(fleet.delivery, 0.5),
            "p99_ms": pct(fleet.delivery, 0.99),
        },
        "errors": dict(fleet.errors),
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
