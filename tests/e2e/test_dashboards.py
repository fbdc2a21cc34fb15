"""The Grafana dashboards and alert rules query only metrics a live agent or coordinator exports,
and docs/metrics.md names exactly what they export."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Coordinator
from tests.e2e.harness import Agent, Renter, wait_for
from tests.support import REPO, free_port

DASHBOARDS = REPO / "dashboards"
METRICS_DOC = REPO / "docs" / "metrics.md"
# Prometheus's own per-target series, which an alert on a dead agent needs.
PROMETHEUS_OWN = {"up"}
# A name followed by a selector or a range: a metric, not a function or a label.
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)")
AITBC_NAME = re.compile(r"\baitbc_[a-z0-9_]+\b")


def exported_names(text: str) -> set[str]:
    """Every series name an exposition can carry, families without samples included."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "info": ("_info",),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def family_names(text: str) -> set[str]:
    """The names docs/metrics.md lists: counters with `_total`, info with `_info`."""
    out = set()
    for family in text_string_to_metric_families(text):
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        out.add(family.name + suffix)
    return out


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel["targets"]:
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in doc["templating"]["list"]:
            if variable["type"] == "query":
                yield f"{path.name}: ${variable['name']}", variable["query"]


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def queried_names(expr: str) -> set[str]:
    return set(SELECTOR.findall(expr)) | set(AITBC_NAME.findall(expr))


def scrape(url: str) -> str:
    return httpx.get(url, timeout=5).text


def test_dashboards_alerts_and_docs_match_live_metrics(
    coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    port = free_port()
    agent_url = f"http://127.0.0.1:{port}/metrics"
    make_agent(extra_toml=f'[metrics]\nlisten = "127.0.0.1:{port}"\n').start()
    gpus = wait_for(
        "4 available GPUs",
        lambda: (
            g
            if len(g := renter.gpus()) == 4 and all(x["status"] == "available" for x in g)
            else None
        ),
    )
    renter.credit()
    renter.book_ok(gpus[0]["id"], duration_s=600)
    wait_for("lease started", lambda: renter.lease_state(gpus[0]["id"]) == "started", timeout_s=10)
    renter.release(gpus[0]["id"])
    # After a whole lease every family has samples, the hook histogram included.
    agent = wait_for(
        "on_end timed",
        lambda: (
            t if 'hook_duration_seconds_count{hook="on_end"}' in (t := scrape(agent_url)) else None
        ),
    )
    coord = scrape(f"{coordinator.url}/metrics")

    exported = exported_names(agent) | exported_names(coord) | PROMETHEUS_OWN
    queries = [*dashboard_exprs(), *((rule["alert"], rule["expr"]) for rule in alert_rules())]
    assert len(queries) > 30
    unknown = {(where, name) for where, expr in queries for name in queried_names(expr) - exported}
    assert not unknown, f"queries name metrics nothing exports: {sorted(unknown)}"
    fleet = " ".join(e for w, e in dashboard_exprs() if w.startswith("aitbc-fleet"))
    assert "aitbc_gpu_" in fleet
    assert "aitbc_agent_" in fleet
    assert "aitbc_coordinator_" in " ".join(
        e for w, e in dashboard_exprs() if w.startswith("aitbc-coordinator")
    )

    documented = set(AITBC_NAME.findall(METRICS_DOC.read_text()))
    families = family_names(agent) | family_names(coord)
    assert families - documented == set(), "exported but not in docs/metrics.md"
    assert documented - families == set(), "in docs/metrics.md but not exported"
    # The GPU series join dcgm-exporter's on the labels it uses.
    [temperature] = [
        f
        for f in text_string_to_metric_families(agent)
        if f.name == "aitbc_gpu_temperature_celsius"
    ]
    assert len(temperature.samples) == 4
    assert {"gpu", "UUID", "modelName", "pci_bus_id"} <= set(temperature.samples[0].labels)


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert re.fullmatch(r"Aitbc[A-Za-z]+", rule["alert"]), rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        assert rule["annotations"]["summary"], rule
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule


def test_dashboards_are_the_generators_output() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/render_dashboards.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    for path in DASHBOARDS.glob("*.json"):
        doc = json.loads(path.read_text())
        ids = [panel["id"] for panel in doc["panels"]]
        assert len(ids) == len(set(ids)), path
        assert doc["uid"] == path.stem


def test_selector_pattern_finds_metric_names() -> None:
    # The check above is only as good as this extraction.
    expr = 'histogram_quantile(0.9, sum by (le) (rate(aitbc_x_bucket{a="b"}[5m]))) / up{job="j"}'
    assert queried_names(expr) == {"aitbc_x_bucket", "up"}
