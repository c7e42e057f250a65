"""Locust users sending one fixed image to a facefront ensemble, over gRPC (GrpcUser) or HTTP (HttpTritonUser).

Run through `python -m bench load` (which sets these and wraps Locust in `timeout -k`), or by hand:

    FF_MODEL=scaleway FF_IMAGE=face.jpg FF_URL=127.0.0.1:8001 \
        timeout -k 10 60 locust -f bench/locustfile.py --headless -u 4 -r 4 -t 20s GrpcUser

FF_MODEL  model family (default scaleway)      FF_IMAGE   image file sent with every request (required)
FF_URL    server host:port (default by protocol) FF_TIMEOUT seconds per request (default 60)
FF_FINAL_CSV  where to write the final request stats CSV (Locust's --csv file lags the end of the run by up to 1 s)
"""
# gRPC's own threads block gevent's loop unless it is told about gevent first: concurrency silently drops to 1.
from grpc.experimental import gevent as grpc_gevent

grpc_gevent.init_gevent()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from locust import User, constant, events, task  # noqa: E402
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `client` when Locust runs this file by path
from client import FrontalizeClient  # noqa: E402

MODEL = os.environ.get("FF_MODEL", "scaleway")
IMAGE = Path(os.environ["FF_IMAGE"]).read_bytes() if os.environ.get("FF_IMAGE") else None
URL = os.environ.get("FF_URL") or None
TIMEOUT = float(os.environ.get("FF_TIMEOUT", "60"))


@events.quit.add_listener
def _write_final_stats(**_kwargs):
    path = os.environ.get("FF_FINAL_CSV")
    env = getattr(_write_final_stats, "environment", None)
    if path and env is not None:
        import csv
        with open(path, "w", newline="") as f:
            StatsCSV(env, PERCENTILES_TO_REPORT).requests_csv(csv.writer(f))


@events.init.add_listener
def _keep_environment(environment, **_kwargs):
    _write_final_stats.environment = environment


class _TritonUser(User):
    abstract = True
    protocol = "grpc"
    wait_time = constant(0)  # closed loop: each user sends its next request as soon as the last one is answered

    def on_start(self):
        if IMAGE is None:
            raise RuntimeError("set FF_IMAGE to the image file to send")
        self.client = FrontalizeClient(URL, protocol=self.protocol, timeout=TIMEOUT)
        self.client.model_info(MODEL)  # metadata once, outside the timed requests

    def on_stop(self):
        self.client.close()  # an open gRPC channel keeps Locust from exiting

    @task
    def frontalize(self):
        t0 = time.perf_counter()
        size, error = 0, None
        try:
            size = self.client.frontalize(IMAGE, model=MODEL).nbytes
        except Exception as e:  # counted as a Locust failure, with the server's message
            error = e
        self.environment.events.request.fire(
            request_type=self.protocol, name=f"{MODEL}_frontalize", response_time=(time.perf_counter() - t0) * 1e3,
            response_length=size, exception=error, context={})


class GrpcUser(_TritonUser):
    protocol = "grpc"


class HttpTritonUser(_TritonUser):
    protocol = "http"
