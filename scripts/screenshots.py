"""Screenshots of the console for docs/console.md (`make screenshots`).

A coordinator on a fresh SQLite file and an agent with simulated GPUs (the same live parts
as the browser tests), a renter who booked one GPU, then each page in a headless Chromium,
at 1280 px and at 360 px wide, written to docs/screenshots/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, expect  # noqa: E402

from tests.browser import chromium_path  # noqa: E402
from tests.e2e.harness import Agent, Renter, wait_for  # noqa: E402
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, live_coordinator  # noqa: E402

OUT = REPO / "docs" / "screenshots"
GPU_TOML = """[gpu]
backend = "simulated"
price_per_hour = "0.50"

[gpu.prices]
"NVIDIA L4" = "0.18"

[[gpu.simulated]]
model = "NVIDIA H100 80GB HBM3"
memory_mib = 81559
count = 3
utilization_pct = [35, 60, 85]

[[gpu.simulated]]
model = "NVIDIA L4"
memory_mib = 23034
count = 2
"""
PAGES = [
    ("gpus", None, "#/"),
    ("gpu", CLIENT_KEY, "#/gpu/{gpu}"),
    ("orders", CLIENT_KEY, "#/orders"),
    ("operator", MINER_KEY, "#/operator"),
    ("admin", ADMIN_KEY, "#/admin"),
    ("bad-key", "not-a-key-of-this-coordinator-0000", "#/"),
]


def shoot(browser: Browser, base: str, gpu: str) -> list[Path]:
    written = []
    for width, suffix in ((1280, ""), (360, "-360")):
        for name, key, hash_ in PAGES:
            if suffix and name in ("admin", "bad-key"):
                continue
            context = browser.new_context(viewport={"width": width, "height": 800})
            page = context.new_page()
            page.goto(f"{base}/")
            if key is not None:
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Use").click()
            page.goto(f"{base}/{hash_.format(gpu=gpu)}")
            expect(page.locator(f'body[data-ready="{hash_.format(gpu=gpu)}"]')).to_have_count(1)
            page.wait_for_timeout(2500 if name == "gpu" else 300)  # a few live samples
            path = OUT / f"{name}{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            written.append(path)
            context.close()
    return written


def main() -> int:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        print("screenshots: no chromium (scripts/setup-browser.sh)", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with live_coordinator(f"sqlite:///{work / 'c.db'}") as base:
            agent = Agent(work / "agent", base, gpu_toml=GPU_TOML, heartbeat_interval_s=1.0)
            agent.start()
            try:
                renter = Renter(base)
                wait_for("5 GPUs", lambda: len(renter.gpus()) == 5, timeout_s=30)
                renter.credit()
                gpus = renter.gpus()
                h100 = [g["id"] for g in gpus if "H100" in g["model"]]
                renter.book_ok(h100[0], duration_s=3 * 3600)
                wait_for("lease started", lambda: renter.lease_state(h100[0]) == "started")
                httpx.post(
                    f"{base}/v1/marketplace/gpu/{h100[1]}/book",
                    json={"duration_hours": 0.5},
                    headers={"X-Api-Key": CLIENT_KEY},
                    timeout=5,
                ).raise_for_status()
                httpx.post(
                    f"{base}/v1/marketplace/gpu/{h100[1]}/release",
                    headers={"X-Api-Key": CLIENT_KEY},
                    timeout=5,
                ).raise_for_status()
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
                    try:
                        written = shoot(browser, base, h100[0])
                    finally:
                        browser.close()
            finally:
                agent.stop()
                renter.close()
    for w in written:
        print(w.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
