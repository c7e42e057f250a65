"""bench/capacity.py: the capacity model. Service-time interpolation, the simulation against queueing theory
(M/D/1 and M/M/1 closed forms), dynamic batching, replica search, reading bench/results, the CLI, and the stored
validation run (predicted vs measured on one CPU server)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from bench import capacity as cap

REPO = Path(__file__).resolve().parents[1]
H200 = REPO / "bench" / "results" / "gpu_liveportrait_h200.json"
VALIDATION = REPO / "bench" / "results" / "capacity_cpu_mesh3d.json"
N = 12_000   # simulated requests per point: enough for 2-3 % on means, fast on 2 cores


def profile(batch_ms=None, max_batch=1, delay=0.0, overhead=0.0, cv=0.0) -> cap.Profile:
    return cap.Profile(name="t", device="test", batch_ms=batch_ms or {1: 10.0}, max_batch=max_batch,
                       queue_delay_ms=delay, overhead_ms=overhead, cv=cv)


def test_service_time_interpolates_between_measured_batches():
    p = profile({1: 10.0, 4: 22.0, 8: 40.0}, max_batch=8)
    assert p.service_ms(1) == 10.0 and p.service_ms(4) == 22.0 and p.service_ms(8) == 40.0
    assert p.service_ms(2) == pytest.approx(14.0) and p.service_ms(6) == pytest.approx(31.0)
    assert p.service_ms(16) == pytest.approx(80.0)              # past the largest: its time per frame
    assert p.capacity_fps() == pytest.approx(8 / 40.0 * 1e3)    # best batch is the largest here
    assert profile({2: 12.0}).service_ms(1) == 12.0             # below the smallest: never faster


@pytest.mark.parametrize("bad", [{}, {0: 5.0}, {1: -1.0}])
def test_profile_rejects_bad_service_times(bad):
    with pytest.raises(ValueError, match="service times"):
        cap.Profile(name="x", device="d", batch_ms=bad, max_batch=1, queue_delay_ms=0)


def test_md1_mean_latency_matches_pollaczek_khinchine():
    """One server, no batching, fixed 10 ms: mean time in system = s + rho*s / (2 (1 - rho))."""
    s, rate = 0.010, 70.0
    rho = rate * s
    want = (s + rho * s / (2 * (1 - rho))) * 1e3
    r = cap.simulate(profile(), rate=rate, requests=N, seed=1)
    assert r.mean_ms == pytest.approx(want, rel=0.06)
    assert r.utilisation == pytest.approx(rho, rel=0.05)
    assert r.queue_ms == pytest.approx(want - 10.0, rel=0.1)


def test_mm1_p95_matches_the_exponential_sojourn_time():
    """cv = 1 makes service times exponential: M/M/1, whose time in system is exponential with rate mu - lambda."""
    mu, rate = 100.0, 60.0
    r = cap.simulate(profile(cv=1.0), rate=rate, requests=3 * N, seed=2)
    assert r.p95_ms == pytest.approx(math.log(20) / (mu - rate) * 1e3, rel=0.1)
    assert r.p50_ms == pytest.approx(math.log(2) / (mu - rate) * 1e3, rel=0.1)


def test_closed_loop_single_user_pays_delay_service_and_overhead():
    p = profile({1: 10.0}, max_batch=8, delay=2.0, overhead=5.0)
    r = cap.simulate(p, users=1, requests=500)
    assert r.p50_ms == pytest.approx(17.0) and r.p95_ms == pytest.approx(17.0)   # alone, it waits the full delay
    assert r.fps == pytest.approx(1000 / 17.0, rel=0.01)
    assert r.mean_batch == 1


def test_dynamic_batching_fills_batches_and_lifts_capacity():
    flat = {1: 10.0, 8: 10.0}                      # a batch of 8 costs what one costs (an idle GPU)
    rate = 400.0                                   # 4x what batch 1 could serve
    unbatched = profile(flat, max_batch=1)
    assert cap.simulate_fleet(unbatched, rate, 1).stable is False
    r = cap.simulate(profile(flat, max_batch=8, delay=5.0), rate=rate, requests=N, seed=3)
    assert r.stable and 4 <= r.mean_batch <= 8 and r.fps == pytest.approx(rate, rel=0.05)
    assert r.p95_ms < 40


def test_fleet_above_capacity_is_unstable():
    p = profile({1: 10.0})
    r = cap.simulate_fleet(p, 250.0, 2)           # 2 replicas serve at most 200/s
    assert not r.stable and math.isinf(r.p95_ms)
    assert cap.simulate_fleet(p, 150.0, 2).stable


def test_replicas_needed_is_the_smallest_count_that_meets_p95():
    p = profile({1: 10.0, 4: 20.0, 8: 35.0}, max_batch=8, delay=2.0, overhead=3.0, cv=0.2)
    n, res = cap.replicas_needed(p, 2000.0, 40.0, requests=N)
    assert n is not None and res.p95_ms <= 40.0
    assert n >= math.ceil(2000.0 / p.capacity_fps())
    if n > 1:
        assert cap.simulate_fleet(p, 2000.0, n - 1, requests=N).p95_ms > 40.0
    assert cap.replicas_needed(p, 2000.0, 12.0) == (None, None)     # one request alone takes 15 ms


def test_rate_and_users_are_exclusive_and_checked():
    with pytest.raises(ValueError, match="either rate"):
        cap.simulate(profile(), rate=1.0, users=1)
    with pytest.raises(ValueError, match="rate must be"):
        cap.simulate(profile(), rate=0.0)


def test_h200_results_give_liveportrait_profiles():
    profiles = {p.name: p for p in cap.load_profiles(H200)}
    assert {"liveportrait/eager32", "liveportrait/fp16", "liveportrait/graphs16"} <= set(profiles)
    g = profiles["liveportrait/graphs16"]
    assert g.batch_ms == {1: 14.709, 4: 37.005, 8: 67.38}
    assert g.device == "NVIDIA H200" and g.max_batch == 8
    # overhead: Triton 1-client p50 (22.92 ms) - in-process batch 1 - the batcher's 2 ms wait
    assert g.overhead_ms == pytest.approx(22.92 - 14.709 - 2.0, abs=1e-3)
    assert g.capacity_fps() == pytest.approx(8 / 67.38 * 1e3)


def test_unreadable_results_say_which_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="x.json"):
        cap.load_profiles(bad)


def _args(**kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cap.add_arguments(p)
    a = p.parse_args([])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_cli_table_and_curve(tmp_path, capsys):
    out = tmp_path / "table.json"
    rc = cap.run(_args(model=["liveportrait/graphs16"], rates="100,1000", requests=3000, out=out))
    text = capsys.readouterr().out
    assert rc == 0 and "PREDICTION" in text and "liveportrait/graphs16" in text
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    n100, n1000 = (t["replicas"] for t in row["targets"])
    assert 1 <= n100 <= n1000 and n1000 >= math.ceil(1000 / row["capacity_fps"])
    assert all(t["sim"]["p95_ms"] <= 200 for t in row["targets"])
    assert data["closed_loop_checks"] and "prediction" in data["kind"]

    rc = cap.run(_args(model=["liveportrait/graphs16"], replicas=2, loads="50,200", requests=3000, out=None))
    text = capsys.readouterr().out
    assert rc == 0 and "2 replica(s)" in text and "200.0" in text


def test_cli_bad_input_is_one_line(capsys):
    assert cap.run(_args(rates="100,abc")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --rates") and "\n" not in err
    assert cap.run(_args(model=["nope"])) == 2
    assert "no profile nope" in capsys.readouterr().err


@pytest.mark.skipif(not VALIDATION.is_file(), reason="no stored validation run")
def test_stored_validation_run_is_complete_and_reloads():
    d = json.loads(VALIDATION.read_text())
    assert d["machine"]["cores"] and d["date"] and d["command"].startswith("python -m bench capacity --validate")
    assert len(d["points"]) >= 2
    for pt in d["points"]:
        m, p = pt["measured"], pt["predicted"]
        assert m["requests"] > 0 and not m["failures"], pt
        assert m["p50_ms"] > 0 and m["p95_ms"] >= m["p50_ms"] and p["p95_ms"] >= p["p50_ms"] > 0
    (prof,) = cap.load_profiles(VALIDATION)
    assert prof.name == "mesh3d" and 1 in prof.batch_ms and prof.overhead_ms >= 0
    # the model at the stored user counts reproduces the stored prediction (same code, same seed)
    first = d["points"][0]
    again = cap.simulate(prof, users=first["users"], requests=20_000, seed=0)
    assert again.p50_ms == pytest.approx(first["predicted"]["p50_ms"], abs=0.2)
