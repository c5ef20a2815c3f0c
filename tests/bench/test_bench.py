"""The benchmark's pieces, fast: the timer, the byte model, the roof, the findings rule, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from normcheck.bench import model, roof, run, timer


class _Clock:
    """A clock that only moves when a call advances it: the timer's arithmetic, not this machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


def test_timer_median_of_a_known_duration():
    clock = _Clock()
    durations = iter([0.5, 0.02] + [0.010, 0.011, 0.009, 0.010, 0.012, 0.010] * 10)
    t = timer.measure(lambda: clock.advance(next(durations)), min_reps=5, min_time=0.05, clock=clock)
    assert t.first_s == 0.5  # the first call is reported apart, the warm-up call is discarded
    assert t.median_s == pytest.approx(0.010) and t.reps >= 5 and t.iqr_s >= 0


def test_timer_synchronizes_before_reading_the_clock():
    clock, done = _Clock(), []

    def sync(h):
        clock.advance(0.01)  # the work a handle stands for ends only when it is synchronized
        done.append(h)

    t = timer.measure(lambda: "handle", sync=sync, min_reps=3, min_time=0.0, clock=clock)
    assert t.median_s == pytest.approx(0.01) and done and all(h == "handle" for h in done)


def test_byte_model_layer_norm():
    # forward reads x and writes y (2 numel itemsize), reads weight and bias, writes mean and rstd
    b = model.model("layer_norm", (8, 1024), "float32")
    assert b.forward == 2 * 8 * 1024 * 4 + 2 * 1024 * 4 + 2 * 8 * 4
    assert b.backward >= 3 * 8 * 1024 * 4


def test_roof_is_a_positive_bandwidth():
    r = roof.measure_roof("cpu", quick=True, frameworks=("numpy",))
    assert r["gbps"] > 0.1 and r["copies"]


def test_the_quick_roof_copies_at_least_four_times_the_last_level_cache():
    """--quick repeats less but copies as much as the default run: a copy that fits in the cache
    measures the cache (a "roof" four times the memory's), and the fractions would not compare."""
    llc, _ = roof.llc("cpu")
    assert roof.measure_roof("cpu", quick=True, frameworks=("numpy",))["array_bytes"] >= 4 * llc


def test_noisy_medians_and_a_loaded_machine_are_warned_about():
    row = {"median_s": 1.0, "iqr_s": 0.1}
    quiet = {"results": [row], "machine": {"load_1min": 0.1, "cores": 2}}
    assert run.noise_warnings(quiet) == []
    noisy = {"results": [row, {"median_s": 1.0, "iqr_s": 0.5}], "machine": {"load_1min": 0.1, "cores": 2}}
    assert "1 of 2 medians vary" in " ".join(run.noise_warnings(noisy))
    loaded = {"results": [row], "machine": {"load_1min": 3.5, "cores": 2}}
    assert "loaded at the start" in " ".join(run.noise_warnings(loaded))


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


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b.json"
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
    assert "GB/s" in p.stdout
    return out


def test_bench_cli_smoke(bench_json):
    doc = json.loads(bench_json.read_text())
    assert doc["schema"] == "normcheck.bench/1" and doc["roof"]["gbps"] > 0
    (r,) = doc["results"]
    assert r["norm"] == "layer_norm" and r["gbps"] > 0 and 0 < r["fraction_of_roof"] < 5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "normcheck.cli", *args], capture_output=True, text=True, timeout=300)


def test_bench_results_in_the_audit_report(bench_json, tmp_path):
    """`audit --bench` and `report --bench` carry a saved bench document into the JSON and the HTML."""
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    doc = json.loads(bench_json.read_text())
    (r,) = doc["results"]
    a_json, a_html, r_html = tmp_path / "a.json", tmp_path / "a.html", tmp_path / "r.html"
    p = _cli(
        *("audit", "--profile", "quick", "--frameworks", "numpy", "--norms", "layer_norm"),
        *("--properties", "agreement", "--dtypes", "float32", "--quiet"),
        *("--bench", str(bench_json), "--json", str(a_json), "--html", str(a_html)),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    section = json.loads(a_json.read_text())["bench"]
    (row,) = section["results"]
    assert row["GB/s"] == f"{r['gbps']:.2f}" and row["of roof"] == f"{100 * r['fraction_of_roof']:.1f}%"
    assert section["machine and roof"][0]["roof GB/s"] == f"{doc['roof']['gbps']:.2f}"
    for html in (a_html, r_html):
        if html == r_html:  # the same section, re-rendered from the saved audit JSON plus the bench file
            q = _cli("report", str(a_json), "--bench", str(bench_json), "--html", str(r_html))
            assert q.returncode == 0, q.stderr
        text = html.read_text()
        assert 'id="bench"' in text and "<caption>results</caption>" in text and f"{r['gbps']:.2f}" in text


def test_bad_bench_document_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text('{"schema": "normcheck.audit/1"}')
    for path in (tmp_path / "x.json", tmp_path / "missing.json"):
        p = _cli("audit", "--frameworks", "numpy", "--bench", str(path))
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and str(path) in p.stderr


def test_cuda_is_refused_with_a_reason_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal applies to CPU-only machines")
    p = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "bench", "--device", "cuda"], capture_output=True, text=True
    )
    assert p.returncode == 2 and "no CUDA device" in p.stderr


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_onnxruntime_bench_call_is_the_native_operator(norm):
    """The bench's ONNX Runtime call runs the operator on NumPy arrays and computes the norm (checked
    against the float64 reference under the error model); forward only, CPU only."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from normcheck import error_model, reference
    from normcheck.bench import native

    shape = (4, 8, 3, 5) if norm in native.CHANNEL_NORMS else (6, 40)
    call = native.build("onnxruntime", norm, shape=shape)
    assert call.api.startswith("onnx ") and "InferenceSession.run" in call.api
    y = np.asarray(call.fn())
    x = native.host_data(int(np.prod(shape))).reshape(shape)
    w, b = native.affine_params(norm, shape)
    c = shape[1]
    ref = native.canonical_call(norm, shape, reference.function(norm), np.zeros(c), np.ones(c))(x, w, b)
    kw = {"weight": w, "bias": None if norm == "rms_norm" else b, "eps": native.EPS}
    kw.update({"normalized_shape": shape[-1:]} if norm in ("layer_norm", "rms_norm") else {})
    kw.update({"num_groups": native.groups(c)} if norm == "group_norm" else {})
    s = error_model.scale(norm, x, **kw)
    assert error_model.compare(y, ref, s, "float32").ok
    assert native.supports("onnxruntime", norm, "channels_first", "eager", native.FORWARD_BACKWARD, "cpu")
    assert native.supports("onnxruntime", norm, "channels_first", "eager", native.FORWARD, "cuda")


MY_LAYER_NORM = """
import torch


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    return y * weight + bias if weight is not None else y
"""


def test_bench_a_target_beside_the_native_norm(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "my_ln.py").write_text(MY_LAYER_NORM)
    out = tmp_path / "t.json"
    p = _cli("bench", f"{tmp_path / 'my_ln.py'}:layer_norm", "--norm", "layer_norm", "--quick", "--json", str(out))
    assert p.returncode == 0, p.stderr
    rows = json.loads(out.read_text())["results"]
    native_row, mine = sorted(rows, key=lambda r: r["target"])
    assert native_row["api"] == "torch.nn.functional.layer_norm" and not native_row["target"]
    assert mine["target"] and mine["api"].endswith("layer_norm") and mine["shape"] == native_row["shape"]
    assert mine["gbps"] > 0 and mine["framework"] == "torch"


def test_bench_target_arguments_are_checked(tmp_path):
    for args, needle in (
        (("--norm", "layer_norm"), "needs both TARGET and --norm"),
        ((f"{tmp_path / 'none.py'}:f", "--norm", "layer_norm"), "none.py"),
        (("tests/doubles/check.py:group_norm_two_pass", "--norm", "groupnorm"), "unknown norm"),
    ):
        p = _cli("bench", *args)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
