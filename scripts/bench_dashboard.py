"""Benchmark the dashboard in a real headless Chromium: start-up, time to the first live loss point, responsiveness.

Measures (a) the time from starting ``streamlit run app.py`` until the home page's heading is visible, (b) the time
from clicking Launch (OPC on the embedded default) until the first loss point is drawn, and (c) how long switching
to another page takes while that job runs (and, for reference, when idle). Prints a table, or JSON with --json.

    .venv/bin/python scripts/bench_dashboard.py [--epochs 2] [--json]

Also home of the helpers the browser test uses: :class:`DashboardServer` and :func:`launch_chromium`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOME_HEADING = "OPC Lab: shallow vs deep forgetting"
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
LOSS_CHART = '.js-plotly-plot:has-text("Loss terms")'  # the live loss curves (other charts come before Launch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DashboardServer:
    """``streamlit run app.py`` on a free local port with its own OPC_LAB_HOME, as a context manager."""

    def __init__(
        self,
        home: str | Path,
        port: int | None = None,
        log_path: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home, self.port, self.extra_env = Path(home), port or free_port(), dict(env or {})
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else self.home / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DashboardServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OPC_LAB_HOME": str(self.home), "PYTHONUNBUFFERED": "1", **self.extra_env}
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(self.port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"streamlit not healthy after {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> DashboardServer:
        self.start()
        self.wait_healthy()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright):
    """The system Chromium, headless, with no network side channels (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def goto_page(page, title: str, timeout_ms: float = 60_000) -> None:
    """Click a sidebar navigation link and wait for the page's title heading."""
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)


def wait_idle(page, timeout_ms: float = 20_000) -> bool:
    """Wait until the script run finished (no "running" icon) and the page settled; False if it kept running."""
    try:
        page.locator('[data-testid="stStatusWidgetRunningIcon"]').wait_for(state="hidden", timeout=timeout_ms)
    except Exception:  # playwright's TimeoutError: a page polling a running job may never settle
        return False
    page.wait_for_timeout(300)
    return True


def set_number(page, label: str, value: float) -> None:
    box = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).first.locator("input")
    box.fill(str(value))
    box.press("Enter")


def progress_step(page) -> int:
    """The step shown by the first progress bar ("step N / M"), 0 when none is shown."""
    import re

    bars = page.locator('[data-testid="stProgress"]')
    if bars.count() == 0:
        return 0
    try:  # the bar goes away when the run ends (the page reruns): then there is no step to read
        text = bars.first.inner_text(timeout=1000)
    except Exception:  # playwright's TimeoutError
        return 0
    m = re.search(r"step (\d+) /", text)
    return int(m.group(1)) if m else 0


class StoreWatcher:
    """Polls the server's run store from this process (20 Hz) and notes when the launched unlearn run is created,
    when its worker has it, and when its first step record is readable -- the breakdown of Launch -> first point."""

    def __init__(self, home: Path) -> None:
        import threading

        sys.path.insert(0, str(ROOT))
        from opc_core.runs.store import RunStore

        self.store = RunStore(home)  # opened here: the first import would delay the first poll by a second or more
        self.seen, self._stop = {}, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> StoreWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        store = self.store
        while not self._stop.is_set() and "first_step" not in self.seen:
            now = time.perf_counter()
            runs = store.list(kind="unlearn", limit=1)
            if runs:
                self.seen.setdefault("created", now)
                if runs[0].status == "running" and runs[0].pid:
                    self.seen.setdefault("running", now)
                if store.steps(runs[0].id):
                    self.seen.setdefault("first_step", now)
            time.sleep(0.05)


def measure(epochs: float, env: dict[str, str] | None = None) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="opc-bench-dash-") as tmp, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        server = DashboardServer(Path(tmp) / "home", env=env)
        t0 = time.perf_counter()
        server.start()
        try:
            server.wait_healthy()
            out["server_healthy_s"] = time.perf_counter() - t0
            page.goto(server.url)
            page.get_by_role("heading", name=HOME_HEADING).wait_for(timeout=60_000)
            out["home_heading_s"] = time.perf_counter() - t0
            t = time.perf_counter()
            goto_page(page, "Unlearn")
            out["switch_page_idle_s"] = time.perf_counter() - t
            set_number(page, "epochs", epochs)
            time.sleep(0.5)  # let the rerun for the new value land before clicking
            with StoreWatcher(server.home) as watch:
                t = time.perf_counter()
                page.get_by_role("button", name="Launch").click()
                page.locator(LOSS_CHART).first.wait_for(timeout=120_000)
                out["launch_to_first_loss_point_s"] = time.perf_counter() - t
            for name, at in watch.seen.items():  # the breakdown, as seen in the store
                out[f"  launch_to_run_{name}_s"] = at - t
            step0 = progress_step(page)
            t = time.perf_counter()
            goto_page(page, "Compare")
            out["switch_page_while_running_s"] = time.perf_counter() - t
            goto_page(page, "Unlearn")
            page.wait_for_timeout(1500)
            out["steps_at_launch_check"] = float(step0)
            out["steps_after_switching"] = float(progress_step(page))
            out["errors_on_page"] = float(page.locator(ERRORS).count())
        finally:
            server.stop()
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=2.0, help="OPC epochs of the launched job")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument(
        "--omp-passive", action="store_true", help="run the server (and its job workers) with OMP_WAIT_POLICY=PASSIVE"
    )
    ap.add_argument(
        "--compare-cold",
        action="store_true",
        help="also measure with the warm worker off (OPC_LAB_WARM_WORKER=0), same run, and print both",
    )
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not found: install Debian's chromium package")
    load = os.getloadavg()[0]
    env = {"OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else {}
    res = measure(args.epochs, env)
    if args.compare_cold:
        cold = measure(args.epochs, {**env, "OPC_LAB_WARM_WORKER": "0"})
        res |= {f"cold worker: {k.strip()}": v for k, v in cold.items() if "launch" in k}
    targets = {"home_heading_s": 5.0, "launch_to_first_loss_point_s": 5.0, "switch_page_while_running_s": 2.0}
    if args.json:
        print(
            json.dumps(
                {"results": res, "targets": targets, "omp_passive": args.omp_passive, "load_average_before": load},
                indent=2,
            )
        )
        return
    print(f"load average before: {load:.1f}; OMP_WAIT_POLICY=PASSIVE: {args.omp_passive}")
    print(f"{'measure':48s} {'value':>9s}  target")
    for k, v in res.items():
        tgt = f"< {targets[k]:.0f} s" + ("  ok" if v < targets[k] else "  MISSED") if k in targets else ""
        print(f"{k:48s} {v:9.2f}  {tgt}")


if __name__ == "__main__":
    main()
