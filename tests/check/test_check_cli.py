"""`normcheck check TARGET --norm NORM`: exit status 0/1/2, one-line errors, file targets with
their folder importable, --json/--html, and no framework imported that the target did not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from normcheck import cli

DOUBLES = str(Path(__file__).parents[1] / "doubles" / "check.py")
QUICK = ["--profile", "quick", "--properties", "agreement,contracts", "--dtypes", "float32"]

try:
    import torch  # noqa: F401

    HAS_TORCH = True
except ImportError:  # pragma: no cover
    HAS_TORCH = False


def _main(capsys, *argv):
    rc = cli.main(["check", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_exit_0_for_a_conforming_target(capsys):
    rc, out, err = _main(capsys, f"{DOUBLES}:group_norm_two_pass", "--norm", "group_norm", *QUICK)
    assert rc == 0, out + err
    assert "CONFORMS" in out and "agreement" in out


def test_exit_1_with_counterexample_repro_and_diagnosis(capsys):
    rc, out, _ = _main(capsys, f"{DOUBLES}:group_norm_unbiased", "--norm", "group_norm", *QUICK)
    assert rc == 1
    assert "first counterexample: group_norm" in out
    for needle in ("DEVIATES", "FAIL agreement (float32)", "shrunk case:", "repro:", "Case.from_json"):
        assert needle in out
    assert "diagnosis: matches group_norm with unbiased variance (Bessel's correction) on" in out


def test_exit_1_for_a_target_that_raises_or_hangs(capsys):
    rc, out, _ = _main(capsys, f"{DOUBLES}:group_norm_raises", "--norm", "group_norm", "--framework", "numpy", *QUICK)
    assert rc == 1 and "RAISES" in out and "NotImplementedError" in out
    rc, out, err = _main(
        capsys,
        f"{DOUBLES}:group_norm_hangs",
        "--norm",
        "group_norm",
        "--framework",
        "numpy",
        "--timeout",
        "0.2",
        *QUICK,
    )
    assert rc == 1 and "HANGS" in out and "its worker process was killed" in out and "Traceback" not in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("check_doubles.group_norm_two_pass", "must be 'package.module:attr' or 'path/to/file.py:attr'"),
        ("no/such/file.py:f", "file not found: no/such/file.py"),
        ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
        (f"{DOUBLES}:no_such_function", "has no attribute 'no_such_function'"),
        (f"{DOUBLES}:not_callable", "is not callable (it is a int)"),
    ],
    ids=["no-colon", "no-file", "no-module", "no-attribute", "not-callable"],
)
def test_exit_2_with_one_line_reason(capsys, target, message):
    rc, _, err = _main(capsys, target, "--norm", "group_norm")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_exit_2_for_bad_arguments(capsys):
    rc, _, err = _main(capsys, f"{DOUBLES}:group_norm_two_pass", "--norm", "groupnorm")
    assert rc == 2 and "unknown norm 'groupnorm'" in err
    rc, _, err = _main(capsys, f"{DOUBLES}:group_norm_two_pass", "--norm", "group_norm", "--properties", "nope")
    assert rc == 2 and "unknown property nope" in err
    with pytest.raises(SystemExit) as e:
        cli.main(["check", f"{DOUBLES}:group_norm_two_pass"])  # --norm is required
    assert e.value.code == 2


def test_import_error_names_the_module_and_verbose_shows_the_traceback(capsys, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import numpy\nraise ImportError('cannot import name foo from bar')\n")
    rc, _, err = _main(capsys, f"{bad}:f", "--norm", "group_norm")
    assert rc == 2 and err.count("\n") == 1
    assert f"could not load {bad}: ImportError: cannot import name foo from bar" in err
    rc, _, err = _main(capsys, f"{bad}:f", "--norm", "group_norm", "--verbose")
    assert rc == 2 and "Traceback" in err and "broken.py" in err


def test_package_import_error(capsys, tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg_nc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "norms.py").write_text("import definitely_missing_dependency_nc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, _, err = _main(capsys, "mypkg_nc.norms:gn", "--norm", "group_norm")
    assert rc == 2
    assert (
        "could not import mypkg_nc.norms: ModuleNotFoundError: No module named 'definitely_missing_dependency_nc'"
        in err
    )


def test_file_target_sees_its_own_folder(capsys, tmp_path):
    """A target file may import a sibling module, as a script would; sys.path is restored after."""
    (tmp_path / "nc_helpers.py").write_text("EPS = 1e-5\n")
    (tmp_path / "my_norm.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from nc_helpers import EPS

            def group_norm(x, num_groups, weight=None, bias=None, eps=EPS):
                v = x.astype(np.float32).reshape(x.shape[0], num_groups, -1)
                y = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + np.float32(eps))
                shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
                y = y.reshape(x.shape)
                y = y if weight is None else y * weight.astype(np.float32).reshape(shape)
                y = y if bias is None else y + bias.astype(np.float32).reshape(shape)
                return y.astype(x.dtype)
            """
        )
    )
    before = list(sys.path)
    rc, out, err = _main(capsys, f"{tmp_path / 'my_norm.py'}:group_norm", "--norm", "group_norm", *QUICK)
    assert rc == 0, out + err
    assert "CONFORMS" in out and "(numpy function)" in out
    assert sys.path == before


def test_json_and_html(capsys, tmp_path):
    js, html = tmp_path / "out" / "check.json", tmp_path / "check.html"
    rc, _, _ = _main(
        capsys, f"{DOUBLES}:group_norm_strided", "--norm", "group_norm", *QUICK, "--json", str(js), "--html", str(html)
    )
    assert rc == 1
    doc = json.loads(js.read_text())
    assert doc["schema"] == "normcheck.audit/1"
    assert set(doc) >= {"run", "summary", "findings", "records", "check"}
    assert doc["run"]["command"].startswith("normcheck check ")
    assert doc["check"]["verdict"] == "deviates" and doc["check"]["diagnosis"]["matches"] == ["strided_groups"]
    fail = next(r for r in doc["records"] if r["verdict"] == "fail")
    assert fail["counterexample"] and fail["repro"] and "strided groups" in fail["diagnosis"]
    assert fail["framework"] == "numpy" and fail["norm"] == "group_norm"
    assert html.read_text().startswith("<!DOCTYPE html>")
    rendered = tmp_path / "again.html"
    assert cli.main(["report", str(js), "--html", str(rendered)]) == 0  # `normcheck report` reads it back
    assert "strided groups" in rendered.read_text()


def _run(code: str, cwd, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_checking_a_torch_target_imports_no_other_framework(tmp_path):
    (tmp_path / "torch_gn.py").write_text(
        textwrap.dedent(
            """
            import torch

            def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
                v = x.reshape(x.shape[0], num_groups, -1).float()
                var, mean = torch.var_mean(v, dim=-1, correction=0, keepdim=True)
                y = ((v - mean) * torch.rsqrt(var + eps)).reshape(x.shape)
                shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
                y = y if weight is None else y * weight.reshape(shape)
                return (y if bias is None else y + bias.reshape(shape)).to(x.dtype)
            """
        )
    )
    code = textwrap.dedent(
        """
        import sys
        from normcheck import cli
        rc = cli.main(["check", "torch_gn.py:group_norm", "--norm", "group_norm", "--profile", "quick",
                       "--properties", "agreement,contracts", "--quiet", "--in-process"])
        print("RC", rc)
        print("MODULES", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
        """
    )
    p = _run(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "RC 0" in p.stdout and "(torch function)" in p.stdout
    loaded = set(p.stdout.split("MODULES", 1)[1].split())
    assert "torch" in loaded
    assert not loaded & {"tensorflow", "keras", "jax", "jaxlib", "flax"}, loaded


def test_hanging_target_does_not_keep_the_process_alive(tmp_path):
    """The target never returns: the process exits all the same (were exit to wait for the
    abandoned call, subprocess.run would raise TimeoutExpired)."""
    (tmp_path / "forever.py").write_text(
        "import threading\n\n\n"
        "def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):\n"
        "    threading.Event().wait()\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "check", "forever.py:group_norm", "--norm", "group_norm",
         "--framework", "numpy", "--timeout", "0.3", "--profile", "quick", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert "HANGS" in p.stdout


def test_numpy_target_is_numpy_even_with_jax_imported(tmp_path):
    """Regression (seen under pytest-xdist): with jax already imported, a NumPy function that
    passes jax arrays through was inferred as jax."""
    pytest.importorskip("jax")
    import jax  # noqa: F401

    from normcheck.target import infer_framework, load

    f = tmp_path / "np_norm.py"
    f.write_text(
        "import numpy as np\n\n"
        "def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):\n"
        "    v = x.reshape(x.shape[0], num_groups, -1)\n"
        "    y = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps)\n"
        "    return y.reshape(x.shape)\n"
    )
    assert infer_framework(load(f"{f}:group_norm"), "group_norm")[0] == "numpy"
