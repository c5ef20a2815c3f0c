"""The benchmark's pieces, fast: the timer, the byte model, the roof, the findings rule, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from normcheck.bench import model, roof, run, timer


def test_timer_median_of_a_known_duration():
    t = timer.measure(lambda: time.sleep(0.01), min_reps=5, min_time=0.05)
    assert 0.009 <= t.median_s <= 0.03, t.median_s
    assert t.reps >= 5 and t.iqr_s >= 0


def test_timer_synchronizes_before_reading_the_clock():
    done = []
    t = timer.measure(lambda: "handle", sync=lambda h: (time.sleep(0.01), done.append(h)), min_reps=3, min_time=0.0)
    assert t.median_s >= 0.009 and done and all(h == "handle" for h in done)


def test_byte_model_layer_norm():
    # forward reads x and writes y (2 numel itemsize), reads weight and bias, writes mean and rstd
    b = model.model("layer_norm", (8, 1024), "float32")
    assert b.forward == 2 * 8 * 1024 * 4 + 2 * 1024 * 4 + 2 * 8 * 4
    assert b.backward >= 3 * 8 * 1024 * 4


def test_roof_is_a_positive_bandwidth():
    r = roof.measure_roof("cpu", quick=True, frameworks=("numpy",))
    assert r["gbps"] > 0.1 and r["copies"]


def test_performance_finding_rule_on_synthetic_numbers():
    rows = [
        {
            "framework": "torch",
            "dtype": "float32",
            "pass": "forward",
            "mode": "eager",
            "size": "large",
            "norm": n,
            "layout": lay,
            "api": a,
            "fraction_of_roof": f,
            "gbps": 10 * f,
        }
        for n, lay, a, f in [
            ("layer_norm", "channels_first", "F.layer_norm", 0.6),
            ("group_norm", "channels_last", "F.group_norm", 0.1),
            ("group_norm", "channels_first", "F.group_norm", 0.5),
        ]
    ]
    found = run.findings(rows)
    assert len(found) == 1 and "channels_last group_norm" in found[0]["statement"] and "10.0%" in found[0]["statement"]


def test_bench_cli_smoke(tmp_path):
    out = tmp_path / "b.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "normcheck.cli",
            "bench",
            "--quick",
            "--frameworks",
            "numpy",
            "--norms",
            "layer_norm",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "normcheck.bench/1" and doc["roof"]["gbps"] > 0
    (r,) = doc["results"]
    assert r["norm"] == "layer_norm" and r["gbps"] > 0 and 0 < r["fraction_of_roof"] < 5
    assert "GB/s" in p.stdout


def test_cuda_is_refused_with_a_reason_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal applies to CPU-only machines")
    p = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "bench", "--device", "cuda"], capture_output=True, text=True
    )
    assert p.returncode == 2 and "no CUDA device" in p.stderr
