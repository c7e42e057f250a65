"""bench/ without a server: command dispatch, the Locust command line, summary.json from Locust's CSV, speed table."""
from __future__ import annotations

import argparse
import json

import pytest

from bench import __main__ as bench_main
from bench import load, speed

SAMPLE_STATS = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
grpc,scaleway_frontalize,142,2,45,50.23,28.98,115.68,49152.0,39.44,0.5,45,52,60,62,73,81,110,110,120,120,120
,Aggregated,142,2,45,50.23,28.98,115.68,49152.0,39.44,0.5,45,52,60,62,73,81,110,110,120,120,120
"""


def test_summary_from_locust_csv(tmp_path):
    (tmp_path / "s.csv").write_text(SAMPLE_STATS)
    s = load.summarize(tmp_path / "s.csv", {"users": 2, "images_per_request": 1})
    assert s == {"rps": 39.44, "fps": 39.44, "p50_ms": 45.0, "p95_ms": 81.0, "p99_ms": 110.0, "mean_ms": 50.23,
                 "requests": 142, "failures": 2, "settings": {"users": 2, "images_per_request": 1}}
    json.dumps(s)


def test_summary_without_requests(tmp_path):
    header = SAMPLE_STATS.splitlines()[0]
    (tmp_path / "s.csv").write_text(header + "\n,Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n")
    s = load.summarize(tmp_path / "s.csv", {})
    assert (s["requests"], s["rps"], s["p50_ms"]) == (0, 0.0, None)
    (tmp_path / "t.csv").write_text(header + "\n")
    with pytest.raises(ValueError, match="Aggregated"):
        load.summarize(tmp_path / "t.csv", {})


def parse(argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    import importlib
    for name, module in bench_main.COMMANDS.items():
        importlib.import_module(module).add_arguments(sub.add_parser(name))
    return p.parse_args(argv)


def test_locust_command_is_bounded_headless_and_picks_the_user_class(tmp_path):
    args = parse(["load", "--users", "3", "--duration", "7", "--out", str(tmp_path), "--protocol", "http"])
    cmd = load.locust_command(args, tmp_path)
    assert cmd[:4] == ["timeout", "-k", str(load.KILL_AFTER_S), str(7 + load.GRACE_S)]
    assert cmd[-1] == "HttpTritonUser"
    for flag, value in (("-u", "3"), ("-r", "3"), ("-t", "7s"), ("--csv", str(tmp_path / "locust"))):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--headless" in cmd


def test_bench_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        bench_main.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "load" in out and "speed" in out


def test_load_refuses_bad_settings_before_running(tmp_path, capsys):
    assert bench_main.main(["load", "--users", "0", "--out", str(tmp_path)]) == 2
    assert bench_main.main(["load", "--image", str(tmp_path / "none.jpg"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_speed_table_marks_skipped_modes_and_ratios():
    eager = speed.Result("eager", "network only").finish([10.0, 10.0, 10.0], 0.03)
    ort = speed.Result("onnxruntime", "network only").finish([5.0] * 4, 0.02)
    for r in (eager, ort):
        r.vs_eager = round(r.images_per_s / eager.images_per_s, 3)
    skipped = speed.Result("triton-8", "whole request", concurrency=8, skipped="cannot reach a Triton server")
    md = speed.markdown([eager, ort, skipped], {"model": "scaleway", "inputs": 3, "seconds": 1, "warmup": 0})
    assert "| onnxruntime | network only | 1 | 4 | 200.0 | 5.0 | 5.0 | 2.00x |" in md
    assert "| triton-8 | skipped: cannot reach a Triton server |" in md


def test_speed_rejects_unknown_modes(tmp_path, capsys):
    assert bench_main.main(["speed", "--out", str(tmp_path), "--modes", "eager,warp"]) == 2
    assert "warp" in capsys.readouterr().err


def test_timed_loop_covers_every_input_once_at_least():
    seen = []
    lat, wall = speed.timed_loop(seen.append, [1, 2, 3], seconds=0, warmup=2)
    assert seen == [1, 2, 1, 2, 3] and len(lat) == 3 and wall >= 0


def test_demo_fails_loudly_when_a_model_gave_no_output_or_its_load_test_failed():
    from bench import demo
    good = {"outputs": ["a.png"], "failed": {}, "load": {"requests": 10, "failures": 0}, "load_exit": 0}
    assert demo.demo_problems({"models": {"mesh3d": good}}) == []
    cases = {"no image": {**good, "outputs": [], "failed": {"x.jpg": "no face"}},
             "load failures": {**good, "load": {"requests": 10, "failures": 3}},
             "load did not run": {**good, "load": None, "load_exit": 2}}
    for why, m in cases.items():
        assert demo.demo_problems({"models": {"scaleway": m}}), why


def test_demo_picks_turned_photos_and_labels_the_grid():
    import numpy as np

    from bench import demo
    picked = demo.turned_photos(3)
    assert len(picked) == 3
    yaws = [abs(y) for _, y in picked]
    assert yaws == sorted(yaws, reverse=True) and yaws[0] > 15   # the offline set holds clearly turned faces
    g = demo.grid([[np.zeros((10, 10, 3), np.uint8), None]], size=40, header=["input", "mesh3d (none)"])
    assert g.shape == (22 + 40, 80, 3) and g[:22].max() > 200    # a caption bar with text above the tiles
