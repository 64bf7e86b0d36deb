"""Page load of the secretariat board on the AMC92 demo, in headless Chromium on loopback.

The dashboard (uvicorn on 127.0.0.1, the demo ledger, a logged-in coordinator) against the
strongest plain alternative: the very same page, pre-rendered once and served with its static
files by Python's ``http.server`` on 127.0.0.1 (no rendering, no session, no database per
request). Both are loaded by the same browser, same warm-up and repetitions; figures are the
browser's own navigation timings: server response, first contentful paint, DOMContentLoaded, the
load event, and the moment the map's SVG is drawn. Needs /usr/bin/chromium (Debian's package).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _common import environment, ratio, write_results
from dosewise import app as api

BOARD = "/web/rounds/demo-amc92-az-2021-02"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {response_ms: nav.responseEnd - nav.requestStart, fcp_ms: fcp ? fcp.startTime : null,
          dcl_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd};
}"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(page: Any, url: str) -> dict[str, float]:
    t0 = time.perf_counter()
    page.goto(url, wait_until="load")
    page.wait_for_selector("#chart-map svg path", state="attached")
    map_ms = (time.perf_counter() - t0) * 1000
    figures: dict[str, float] = page.evaluate(TIMING)
    figures["map_drawn_ms"] = map_ms
    return figures


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed loads of each page (after 2 warm-ups)")
    parser.add_argument("--who", type=Path, default=None, help="WHO weekly file for the demo's need ranking")
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        with api.Desk.open(str(db), create=True, actor="bench") as desk:
            api.stage_demo(desk, who=args.who)
            token = desk.create_key("coordinator", name="bench")[1]
        port = _port()
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "dosewise.service.app:app_from_env", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                env={**os.environ, "DOSEWISE_DB": str(db)}, stdout=subprocess.DEVNULL)
        static_root = Path(tmp) / "static-site"
        httpd = None
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/web/login", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{base}/web/login")
                page.fill("#key", token)
                page.click("form[action='/web/login'] button")
                page.wait_for_url(lambda u: "/login" not in u)
                # the baseline: the same bytes, pre-rendered, served as files
                html = page.request.get(f"{base}{BOARD}").text()
                import dosewise.web

                shutil.copytree(Path(dosewise.web.__file__).parent / "static", static_root / "web" / "static")
                (static_root / "board.html").write_text(html, encoding="utf-8")
                sport = _port()
                handler = functools.partial(_Quiet, directory=str(static_root))
                httpd = http.server.ThreadingHTTPServer(("127.0.0.1", sport), handler)
                threading.Thread(target=httpd.serve_forever, daemon=True).start()
                results: dict[str, dict[str, float]] = {}
                for label, url in (("dashboard", f"{base}{BOARD}"),
                                   ("static copy", f"http://127.0.0.1:{sport}/board.html")):
                    for _ in range(2):
                        _load(page, url)
                    results[label] = _median([_load(page, url) for _ in range(args.repeat)])
                browser.close()
        finally:
            if httpd is not None:
                httpd.shutdown()
            proc.terminate()
            proc.wait(timeout=15)
    print(f"secretariat board, AMC92 demo (92 participants, 165 offers), median of {args.repeat} loads "
          "after 2 warm-ups, 1280×800:")
    for label, fig in results.items():
        print(f"  {label:<12} server response {fig['response_ms']:6.1f} ms   first contentful paint "
              f"{fig['fcp_ms']:6.1f} ms   DOMContentLoaded {fig['dcl_ms']:6.1f} ms   load {fig['load_ms']:6.1f} ms   "
              f"map drawn {fig['map_drawn_ms']:6.1f} ms")
    ours, base_fig = results["dashboard"], results["static copy"]
    print(f"  ratio static copy / dashboard: first paint {ratio(base_fig['fcp_ms'], ours['fcp_ms']):.2f}×, "
          f"map drawn {ratio(base_fig['map_drawn_ms'], ours['map_drawn_ms']):.2f}× (goal: first paint < 1,000 ms)")
    metrics = {f"web board {k} median_s": v / 1000 for k, v in ours.items()}
    out = write_results("web", {"benchmark": "web", "environment": env, "repeat": args.repeat, "figures": results,
                                "metrics": metrics})
    print(f"wrote {out}")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    main()
