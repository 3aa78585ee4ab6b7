"""App start-up: ``app.import_s`` (import app) and ``app.cold_start_s`` (process start to HTTP 200 on /)."""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_seconds() -> float:
    """Wall time of ``import app`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start_seconds(timeout: float = 120.0) -> float:
    """Seconds from spawning ``python app.py`` until ``GET /`` answers 200."""
    port = _free_port()
    env = dict(os.environ, PORT=str(port))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with code {proc.returncode} before serving")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"app did not answer within {timeout} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run() -> Iterator[dict]:
    imports = [import_seconds() for _ in range(RUNS)]
    yield {"name": "app.import_s", "value": round(statistics.median(imports), 3), "unit": "s"}
    starts = [cold_start_seconds() for _ in range(RUNS)]
    yield {"name": "app.cold_start_s", "value": round(statistics.median(starts), 3), "unit": "s"}
