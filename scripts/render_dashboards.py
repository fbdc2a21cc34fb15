"""Write the Grafana dashboards under dashboards/ from the panel lists below (`make docs`).

The JSON files are what operators import (Dashboards → New → Import); this script is the one
place their queries are written, so the fleet and coordinator dashboards stay alike in shape
(a datasource picker, an instance filter, stats on top, time series below).
tests/test_dashboards.py checks that the files are this script's output and that every metric
a query names is one the agent or the coordinator exports on a live `/metrics`.

    python scripts/render_dashboards.py          # rewrite dashboards/*.json
    python scripts/render_dashboards.py --check  # exit 1 when a file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "table"
    width: int = 12
    height: int = 8
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = field(default=())


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in panel.thresholds]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "refId": chr(ord("A") + i),
                **({"format": "table", "instant": True} if panel.kind == "table" else {}),
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {},
    }
    if panel.kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return body


def dashboard(uid: str, title: str, description: str, job: str, panels: list[Panel]) -> Any:
    laid_out, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel(panel, i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["aitbc"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": f"label_values({job}, instance)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "panels": laid_out,
    }


SEL = 'instance=~"$instance"'

FLEET = [
    Panel(
        "GPUs by health",
        ((f"sum by (health) (aitbc_gpu_health{{{SEL}}})", "{{health}}"),),
        kind="stat",
        width=6,
        height=5,
    ),
    Panel(
        "GPUs leased",
        (
            (f"sum(aitbc_gpu_leased{{{SEL}}})", "leased"),
            (f"count(aitbc_gpu_leased{{{SEL}}})", "GPUs"),
        ),
        kind="stat",
        width=6,
        height=5,
    ),
    Panel(
        "Agents heard by the coordinator",
        (
            (f"sum(aitbc_agent_coordinator_up{{{SEL}}})", "up"),
            (f"count(aitbc_agent_coordinator_up{{{SEL}}})", "agents"),
        ),
        kind="stat",
        width=6,
        height=5,
    ),
    Panel(
        "Xid errors, last hour",
        ((f"sum(increase(aitbc_gpu_xid_errors_total{{{SEL}}}[1h]))", "Xid"),),
        kind="stat",
        width=6,
        height=5,
        thresholds=((1, "red"),),
    ),
    Panel(
        "GPU utilisation",
        ((f"aitbc_gpu_utilization_ratio{{{SEL}}}", "{{instance}} gpu{{gpu}}"),),
        unit="percentunit",
    ),
    Panel(
        "GPU memory used",
        (
            (
                f"aitbc_gpu_memory_used_bytes{{{SEL}}} / aitbc_gpu_memory_total_bytes{{{SEL}}}",
                "{{instance}} gpu{{gpu}}",
            ),
        ),
        unit="percentunit",
    ),
    Panel(
        "GPU temperature",
        ((f"aitbc_gpu_temperature_celsius{{{SEL}}}", "{{instance}} gpu{{gpu}}"),),
        unit="celsius",
        thresholds=((80, "orange"), (88, "red")),
    ),
    Panel(
        "Power draw against the limit",
        (
            (f"sum by (instance) (aitbc_gpu_power_draw_watts{{{SEL}}})", "{{instance}} draw"),
            (f"sum by (instance) (aitbc_gpu_power_limit_watts{{{SEL}}})", "{{instance}} limit"),
        ),
        unit="watt",
    ),
    Panel(
        "SM clock",
        ((f"aitbc_gpu_sm_clock_hertz{{{SEL}}}", "{{instance}} gpu{{gpu}}"),),
        unit="hertz",
    ),
    Panel(
        "Xid errors and uncorrected ECC errors",
        (
            (
                f"sum by (instance, gpu, xid) (increase(aitbc_gpu_xid_errors_total{{{SEL}}}[15m]))",
                "{{instance}} gpu{{gpu}} Xid {{xid}}",
            ),
            (
                f"increase(aitbc_gpu_ecc_uncorrected_errors_total{{{SEL}}}[15m])",
                "{{instance}} gpu{{gpu}} ECC",
            ),
        ),
        description="Xid 48/63/64/74/79/94/95 mean the card needs attention (docs/metrics.md).",
    ),
    Panel(
        "Leases per hour",
        tuple(
            (f"sum(increase(aitbc_agent_leases_{what}_total{{{SEL}}}[1h]))", what)
            for what in ("started", "ended", "rejected", "failed")
        ),
    ),
    Panel(
        "Hook duration (p50, p95)",
        tuple(
            (
                f"histogram_quantile({q}, sum by (le, hook) "
                f"(rate(aitbc_agent_hook_duration_seconds_bucket{{{SEL}}}[15m])))",
                f"{{{{hook}}}} p{round(q * 100)}",
            )
            for q in (0.5, 0.95)
        ),
        unit="s",
    ),
    Panel(
        "Heartbeats and failures",
        (
            (f"sum(rate(aitbc_agent_heartbeats_sent_total{{{SEL}}}[5m]))", "sent/s"),
            (f"sum(rate(aitbc_agent_heartbeat_failures_total{{{SEL}}}[5m]))", "failed/s"),
            (f"sum(aitbc_agent_lease_acks_owed{{{SEL}}})", "acks owed"),
        ),
    ),
    Panel(
        "Agent versions and drivers",
        (
            (
                f"count by (version, backend, driver_version, cuda_driver_version) "
                f"(aitbc_agent_info{{{SEL}}})",
                "",
            ),
        ),
        kind="table",
    ),
]

COORDINATOR = [
    Panel(
        "GPUs by status",
        ((f"sum by (status) (aitbc_coordinator_gpus{{{SEL}}})", "{{status}}"),),
        kind="stat",
        width=8,
        height=5,
    ),
    Panel(
        "Miners online / offline",
        ((f"sum by (state) (aitbc_coordinator_miners{{{SEL}}})", "{{state}}"),),
        kind="stat",
        width=8,
        height=5,
    ),
    Panel(
        "Bookings active",
        ((f"max(aitbc_coordinator_bookings_active{{{SEL}}})", "active"),),
        kind="stat",
        width=8,
        height=5,
    ),
    Panel(
        "Requests per second by route",
        (
            (
                f"sum by (route) (rate(aitbc_coordinator_http_requests_total{{{SEL}}}[5m]))",
                "{{route}}",
            ),
        ),
        unit="reqps",
    ),
    Panel(
        "Share of requests answered 5xx",
        (
            (
                f'sum(rate(aitbc_coordinator_http_requests_total{{{SEL},status=~"5.."}}[5m])) / '
                f"sum(rate(aitbc_coordinator_http_requests_total{{{SEL}}}[5m]))",
                "5xx",
            ),
        ),
        unit="percentunit",
        thresholds=((0.01, "red"),),
    ),
    Panel(
        "Latency p99 by route",
        (
            (
                "histogram_quantile(0.99, sum by (le, route) "
                f"(rate(aitbc_coordinator_http_request_duration_seconds_bucket{{{SEL}}}[5m])))",
                "{{route}}",
            ),
        ),
        unit="s",
    ),
    Panel(
        "Market events per minute",
        (
            (
                "sum by (event) (rate(aitbc_coordinator_events_total"
                f'{{{SEL},event!="api_key_refused"}}[5m])) * 60',
                "{{event}}",
            ),
        ),
    ),
    Panel(
        "Refused API keys per minute",
        (
            (
                "sum(rate(aitbc_coordinator_events_total"
                f'{{{SEL},event="api_key_refused"}}[5m])) * 60',
                "refused",
            ),
        ),
        description="A burst is a misconfigured host or someone guessing keys: see the "
        "api_key_refused log lines for the client address.",
    ),
    Panel(
        "Oldest heartbeats",
        ((f"topk(10, aitbc_coordinator_miner_heartbeat_age_seconds{{{SEL}}})", "{{miner_id}}"),),
        unit="s",
    ),
    Panel(
        "Coordinator versions",
        ((f"count by (version, database) (aitbc_coordinator_info{{{SEL}}})", ""),),
        kind="table",
    ),
]

DASHBOARDS = {
    "aitbc-fleet.json": dashboard(
        "aitbc-fleet",
        "AITBC miner fleet",
        "Every GPU host's agent: GPU health, utilisation, errors and leases.",
        "aitbc_agent_info",
        FLEET,
    ),
    "aitbc-coordinator.json": dashboard(
        "aitbc-coordinator",
        "AITBC coordinator",
        "The marketplace coordinator: traffic, errors, latency, GPUs, miners and bookings.",
        "aitbc_coordinator_info",
        COORDINATOR,
    ),
}


def rendered() -> dict[Path, str]:
    return {OUT / name: json.dumps(doc, indent=2) + "\n" for name, doc in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args()
    stale = [p for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run `make docs`", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
