"""Faults survived: a killed python stub is noticed and the server restarts by itself; Ctrl-C leaves nothing behind.

`python -m facefront.serving` (what `make serve` runs) is started as a user would, on free ports (bench.fault's
Launcher, the code `python -m bench fault` measures with); the python stub of the scaleway generator leaf is killed
(SIGKILL) while two clients keep sending requests. Triton 2.51 alone would fail every later request to that model and
keep answering ready; the launcher's supervision must reload that model within seconds, and later requests succeed.
"""
from __future__ import annotations

import pytest

from bench.fault import Launcher, kill_under_load
from tests.conftest import REPO

pytestmark = [pytest.mark.server, pytest.mark.slow]
MODEL = "scaleway"


def test_a_killed_stub_is_restarted_and_ctrl_c_cleans_up():
    launcher = Launcher(MODEL)
    try:
        photo = (REPO / ".cache" / "data" / "obama.jpg").read_bytes()
        assert f"{MODEL}_generator" in launcher.stubs().values()
        res = kill_under_load(launcher, MODEL, f"{MODEL}_generator", photo, users=2, warmup=2, timeout=90)
    finally:
        shutdown = launcher.interrupt()
    print(f"recovered in {res['recovered_s']} s after the stub was killed, {res['failed_after_kill']} failed requests")
    assert res["requests_before_kill"] > 0 and res["failures_before_kill"] == 0, res
    assert res["failed_after_kill"] > 0, res            # the kill did hit the model (else the test proves nothing)
    assert res["recovered_s"] is not None and res["recovered_s"] < 30, res
    assert res["requests_after_recovery"] > 0 and res["failures_after_recovery"] == 0, res
    assert res["launcher_action"] == "reloaded the model", "".join(launcher.lines[-20:])
    assert shutdown["children_before"] > 0
    assert shutdown["exit_code"] == 0, "".join(launcher.lines[-20:])
    assert shutdown["left_processes"] == 0, shutdown
    assert shutdown["repository_views"] == 1 and shutdown["left_views"] == 0, shutdown   # the view it made is removed
