"""pytest-benchmark suite: each installed framework's native norms on a moderate shape, grouped by
norm and shape, with bytes, GB/s and fraction of the copy roof in ``extra_info``. Compare runs with
pytest-benchmark's own `--benchmark-save NAME` and `--benchmark-compare --benchmark-compare-fail=median:10%`."""

from __future__ import annotations

import pytest

from normcheck import adapters, spec
from normcheck.bench import model, native, roof

SHAPES = {"rows": (1024, 4096), "channels": (8, 64, 64, 64)}
_ROOF: dict[str, float] = {}


def _roof_gbps() -> float:
    if "cpu" not in _ROOF:
        _ROOF["cpu"] = roof.measure_roof("cpu", quick=True, frameworks=("numpy",))["gbps"]
    return _ROOF["cpu"]


def _cases():
    out = []
    for fw in native.MODES:  # the frameworks the bench times natively
        if not adapters.get(fw).available():
            out.append(
                pytest.param(
                    fw, None, None, id=f"{fw}-not-installed", marks=pytest.mark.skip(reason=f"{fw} is not installed")
                )
            )
            continue
        for norm in spec.names():
            for layout in ("channels_first", "channels_last"):
                why = native.supports(fw, norm, layout, native.MODES[fw][0], native.FORWARD, "cpu")
                if why is None:
                    out.append(pytest.param(fw, norm, layout, id=f"{fw}-{norm}-{layout}"))
    out.append(
        pytest.param(
            "torch",
            "layer_norm",
            "cuda",
            id="torch-layer_norm-cuda",
            marks=pytest.mark.skipif(not _cuda(), reason="no CUDA device on this machine"),
        )
    )
    return out


def _cuda() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(("framework", "norm", "layout"), _cases())
def test_forward(benchmark, framework, norm, layout):
    device = "cuda" if layout == "cuda" else "cpu"
    layout = "channels_first" if layout == "cuda" else layout
    shape = SHAPES["rows" if norm in model.ROW_NORMS else "channels"]
    call = native.build(framework, norm, shape=shape, dtype="float32", layout=layout, device=device)
    benchmark.group = f"{norm} {'x'.join(map(str, shape))}"
    benchmark.pedantic(lambda: call.sync(call.fn()), warmup_rounds=2, rounds=10, iterations=1)
    nbytes = model.model(norm, shape, "float32").forward
    med = benchmark.stats.stats.median
    benchmark.extra_info.update(
        bytes=nbytes, gbps=nbytes / med / 1e9, fraction_of_roof=nbytes / med / 1e9 / _roof_gbps(), api=call.api
    )
