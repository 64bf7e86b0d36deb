"""``dosewise demo --serve``: the demo ledger in the dashboard, with one key per role printed once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.web.conftest import WHO_FILE, free_port


def test_demo_serve_opens_the_demo_in_the_dashboard(tmp_path: Path, shared_data: Path) -> None:
    port = free_port()
    db = tmp_path / "demo.db"
    command = [str(Path(sys.executable).parent / "dosewise"), "demo", "--serve", "--port", str(port),
               "--db", str(db), "--who", str(shared_data / WHO_FILE)]
    proc = subprocess.Popen(command,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("Log in as PRK") for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
        text = "\n".join(lines)
        assert f"http://127.0.0.1:{port}/web/" in text, text
        keys = dict(re.findall(r"^\s+(coordinator|observer|reviewer|donor)\s+\S+\s+(dw_\S+)$", text, re.M))
        keys.update(re.findall(r"^\s+participant\s+(PRK|KEN)\s+(dw_\S+)$", text, re.M))
        assert set(keys) == {"coordinator", "observer", "reviewer", "donor", "PRK", "KEN"}, text
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/web/login", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base) as client:
            assert client.post("/web/login", data={"key": keys["coordinator"]}).status_code == 303
            board = client.get("/web/rounds/demo-coronavac-2021-08")
            assert board.status_code == 200 and "SINOVAC-DPRK-2021-08" in board.text, board.text[-3000:]
        with httpx.Client(base_url=base) as client:
            client.post("/web/login", data={"key": keys["PRK"]})
            mine = client.get("/web/my").text
            assert "Decline this offer" in mine  # DPRK's offer awaits its answer
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert not any(db.parent.glob("*.keys*"))  # the keys were printed, never written beside the ledger
