"""A bounded load test of the served page's API on localhost.

Two passes over the same requests (each a task with one image, cycling over
the tasks): first one request at a time by one client (serving without
concurrency), then ``clients`` clients at once, ``rounds`` requests each, so
requests of different tasks arrive together and share forwards. Every
request must be answered; every concurrent answer must equal the answer the
same request got alone (boxes to 0.01 px, scores to 1e-4). The report gives,
per pass, requests, errors, mismatches, latency p50 / p95 and throughput,
and the server's own count of images per forward.

``tools/serve_load_test.py`` is the command line; the test suite runs it
small on the tiny detector.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from gradio_client import Client, handle_file

from ..utils.paths import REPO_ROOT
from .app import API_NAME

BOX_TOLERANCE = 0.011  # records round boxes to 0.01 px
SCORE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LoadCase:
    """One request: ``task`` (or 'zero-shot' with ``classes``) on
    ``image``."""
    task: str
    image: str
    classes: str = ''


@dataclass
class PassReport:
    clients: int
    requests: int = 0
    answered: int = 0
    errors: List[str] = field(default_factory=list)
    mismatches: List[str] = field(default_factory=list)
    latencies: List[float] = field(default_factory=list)
    seconds: float = 0.0
    server: Optional[dict] = None

    def to_dict(self) -> dict:
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        return dict(
            clients=self.clients, requests=self.requests,
            answered=self.answered, errors=len(self.errors),
            mismatches=len(self.mismatches),
            latency_p50_s=round(float(np.percentile(lat, 50)), 4),
            latency_p95_s=round(float(np.percentile(lat, 95)), 4),
            seconds=round(self.seconds, 3),
            throughput_rps=round(self.answered / self.seconds, 3)
            if self.seconds else 0.0,
            images_per_forward=(self.server or {}).get('images_per_forward'),
            first_errors=self.errors[:3],
            first_mismatches=self.mismatches[:3])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``tools/serve.py ARGS --port PORT`` in a child process, until
    :meth:`stop`; :meth:`wait_ready` polls its page."""

    def __init__(self, args: Sequence[str], port: Optional[int] = None,
                 log_path: Optional[str] = None, env: Optional[dict] = None):
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}/'
        self.log_path = log_path
        self._log = open(log_path, 'w') if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'serve.py'),
             *args, '--host', '127.0.0.1', '--port', str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
            env=dict(os.environ, GRADIO_ANALYTICS_ENABLED='False',
                     **(env or {})))

    def wait_ready(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f'the server exited with status '
                    f'{self.process.returncode}: {self.log_tail()}')
            try:
                with urllib.request.urlopen(self.url, timeout=2) as reply:
                    if reply.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f'no page at {self.url} after {timeout} s: '
                           f'{self.log_tail()}')

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path or not osp.exists(self.log_path):
            return '(no log)'
        with open(self.log_path) as f:
            return f.read()[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def request(client: Client, case: LoadCase, score_thr: float) -> dict:
    """One detection request through the page's API: the JSON payload."""
    _, message, payload, _ = client.predict(
        case.task, case.classes, [handle_file(case.image)], score_thr,
        api_name='/' + API_NAME)
    return dict(message=message, payload=payload)


def same_detections(a: dict, b: dict) -> Optional[str]:
    """None when two payloads (JSON text) hold the same detections within
    the tolerances, else the first difference."""
    left, right = json.loads(a), json.loads(b)
    if 'error' in left or 'error' in right:
        return f'error: {left.get("error") or right.get("error")}'
    for img_a, img_b in zip(left['images'], right['images']):
        for detector in ('base', 'tuned'):
            da = (img_a.get(detector) or {}).get('detections', [])
            db = (img_b.get(detector) or {}).get('detections', [])
            if len(da) != len(db):
                return f'{detector}: {len(da)} vs {len(db)} detections'
            for x, y in zip(da, db):
                if x['label'] != y['label']:
                    return f'{detector}: label {x["label"]} vs {y["label"]}'
                if abs(x['score'] - y['score']) > SCORE_TOLERANCE:
                    return f'{detector}: score {x["score"]} vs {y["score"]}'
                if max(abs(u - v) for u, v in zip(x['bbox'], y['bbox'])) \
                        > BOX_TOLERANCE:
                    return f'{detector}: box {x["bbox"]} vs {y["bbox"]}'
    if len(left['images']) != len(right['images']):
        return 'a different number of images'
    return None


def _server_stats(url: str) -> dict:
    return Client(url, download_files=False, verbose=False).predict(
        api_name='/stats')


def _difference(before: dict, after: dict) -> dict:
    keys = ('requests', 'images', 'forwards', 'forward_images')
    out = {k: after[k] - before[k] for k in keys}
    out['images_per_forward'] = round(
        out['forward_images'] / out['forwards'], 3) if out['forwards'] else 0
    return out


def run_load_test(url: str, cases: Sequence[LoadCase], clients: int = 8,
                  rounds: int = 4, score_thr: float = 0.3,
                  progress=None) -> Dict[str, PassReport]:
    """The two passes (module docstring) against the server at ``url``."""
    if not cases:
        raise ValueError('No requests to send: give tasks and images.')
    say = progress or (lambda text: None)
    warm = Client(url, download_files=False, verbose=False)
    request(warm, cases[0], score_thr)  # the first forward builds caches

    # one at a time: the reference answers and the baseline figures
    alone = PassReport(clients=1)
    reference = {}
    stats = _server_stats(url)
    start = time.perf_counter()
    for number, case in enumerate(cases):
        alone.requests += 1
        began = time.perf_counter()
        try:
            reference[case] = request(warm, case, score_thr)['payload']
            alone.answered += 1
            alone.latencies.append(time.perf_counter() - began)
        except Exception as err:  # noqa: BLE001  (reported, not raised)
            alone.errors.append(f'{case}: {type(err).__name__}: {err}')
        say(f'one at a time: {number + 1}/{len(cases)}')
    alone.seconds = time.perf_counter() - start
    alone.server = _difference(stats, _server_stats(url))

    # concurrent clients, each starting at another case
    together = PassReport(clients=clients)
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client_loop(index: int):
        client = Client(url, download_files=False, verbose=False)
        barrier.wait()
        for step in range(rounds):
            case = cases[(index + step * clients) % len(cases)]
            began = time.perf_counter()
            try:
                payload = request(client, case, score_thr)['payload']
                latency = time.perf_counter() - began
                difference = same_detections(payload, reference[case]) \
                    if case in reference else 'no reference answer'
                with lock:
                    together.answered += 1
                    together.latencies.append(latency)
                    if difference:
                        together.mismatches.append(f'{case}: {difference}')
            except Exception as err:  # noqa: BLE001  (reported, not raised)
                with lock:
                    together.errors.append(
                        f'{case}: {type(err).__name__}: {err}')
            with lock:
                together.requests += 1
                say(f'{clients} clients: {together.requests}/'
                    f'{clients * rounds}')

    stats = _server_stats(url)
    threads = [threading.Thread(target=client_loop, args=(i, ))
               for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together.seconds = time.perf_counter() - start
    together.server = _difference(stats, _server_stats(url))
    return dict(one_at_a_time=alone, concurrent=together)
