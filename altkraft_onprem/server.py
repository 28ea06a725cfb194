"""`altkraft run`: gunicorn serves the app; its master process also keeps one job consumer
(`altkraft worker`) running beside the web workers, so the appliance is one service.

Worker model (measured with bench/tracking.py on the 2-core target): gunicorn's gthread
worker with many threads (server.threads, default 1500 per worker, created on demand) and a
high connection limit (server.worker_connections). A held tracking image (/t/i/, /t/r/) sleeps in
poll() on its socket, costing a mostly idle thread (~0.1 MB RSS) and no CPU; with 2,000 streams
held a UI page's p99 stayed under 100 ms. The default 16 threads let 32 streams starve the UI,
and gevent workers were slower here (SQLite and the batch writer block the hub: UI p99 ~470 ms)
and would monkey-patch every library in the process; a separate asyncio listener would need
its own port or a socket hand-off that WSGI does not offer. So: no new dependency, threads —
with one addition: open pixels and clicks, the bulk of the traffic, are answered on the
worker's event loop instead of a pool thread (tracking/worker.py).

Stop: SIGTERM to the master -> gunicorn finishes requests within graceful_timeout, then the
consumer gets SIGINT, huey's graceful stop: running jobs finish, nothing new starts.
"""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time

from gunicorn.app.base import BaseApplication

from altkraft_onprem.config import Settings


class ConsumerKeeper:
    """Runs `altkraft worker` as a child and restarts it if it dies unexpectedly."""

    def __init__(self, config_path: str | None, graceful_timeout: int):
        self.command = [sys.executable, "-m", "altkraft_onprem.cli"]
        if config_path:
            self.command += ["--config", config_path]
        self.command += ["worker"]
        self.graceful_timeout = graceful_timeout
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._keep, name="consumer-keeper", daemon=True)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self.thread.start()

    def _keep(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            code = self.process.wait()
            if self.stopping.is_set():
                return
            print(f"altkraft: job consumer exited with {code}; restarting in {backoff:.0f}s",
                  file=sys.stderr, flush=True)
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 60)
            self.process = subprocess.Popen(self.command)

    def stop(self) -> None:
        self.stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)          # huey: finish running jobs, then exit
        try:
            self.process.wait(self.graceful_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Appliance(BaseApplication):
    def __init__(self, settings: Settings, config_path: str | None, with_consumer: bool = True):
        self.settings = settings
        self.config_path = config_path
        self.keeper = ConsumerKeeper(config_path, settings["server.graceful_timeout"]) \
            if with_consumer else None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        keeper = self.keeper
        options = {
            "bind": s["server.bind"],
            "workers": s["server.workers"],
            # gthread + open pixels and clicks answered on its event loop (tracking/worker.py)
            "worker_class": "altkraft_onprem.tracking.worker.TrackingWorker",
            "threads": s["server.threads"],
            "worker_connections": s["server.worker_connections"],
            "graceful_timeout": s["server.graceful_timeout"],
            "timeout": 120,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s["log_level"],
            "proc_name": "altkraft",
            "forwarded_allow_ips": "*" if s["server.trusted_proxies"] else "127.0.0.1",
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a control socket in $XDG_RUNTIME_DIR or $HOME/.gunicorn;
            # a hardened service writes nowhere but its data directory, and we do not use it.
            options["control_socket_disable"] = True
        options["post_worker_init"] = _on_worker_start
        options["worker_exit"] = _on_worker_exit
        if keeper is not None:
            options["when_ready"] = lambda server: keeper.start()
            options["on_exit"] = lambda server: keeper.stop()
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from altkraft_onprem import tasks
        from altkraft_onprem.app import create_app

        app = create_app(self.settings)
        tasks.configure_queue(self.settings)
        tasks.bind_app(app)
        return app


def _on_worker_start(worker) -> None:
    """The app is loaded: freeze what exists now out of the garbage collector's sight, and
    chain the worker's SIGTERM/SIGQUIT handling: held reading-time streams end at once
    (tracking.buffer.stopping) so the graceful stop does not wait out their cap."""
    from altkraft_onprem.tracking.buffer import stopping

    # The loaded app is ~10^5 long-lived objects (modules, SQLAlchemy tables, Jinja, Babel) that
    # every full collection walked again: under load a gen-2 pass stopped all threads of the
    # worker for 150-670 ms, the tracking p99. Frozen, a full pass sees only request garbage.
    gc.collect()
    gc.freeze()
    # A thread that gives up the GIL for a syscall waits up to the switch interval to get it back
    # while another thread computes. The event loop answering tracking requests makes several
    # syscalls per request; with the default 5 ms, each event flush (tens of ms of Python) cost
    # queued clicks 5 ms per syscall: p99 74 ms at 8,000 clicks/s, 13 ms with 0.5 ms.
    sys.setswitchinterval(0.0005)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            stopping.set()
            previous(signum, frame)
        signal.signal(sig, handler)


def _on_worker_exit(server, worker) -> None:
    """The worker has answered its last request: write the tracking events it still buffers."""
    from altkraft_onprem.tracking.buffer import flush_at_exit

    flush_at_exit()


def prepare_metrics_dir(settings: Settings) -> None:
    """One directory of per-process metric files, emptied at each start."""
    path = settings.data_dir / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
