#!/usr/bin/env bash
# Smoke test of the wheel: build it, install it into a fresh virtualenv (no editable install, no
# checkout on the path), and from a temporary folder outside the checkout run `normcheck specs` and a
# quick `normcheck check` of a small NumPy LayerNorm. Fails on any error.
#
#   scripts/wheel_smoke.sh
#
# PYTHON (default python3) makes the fresh virtualenv, whose pip builds the wheel in build isolation
# (setuptools from pyproject.toml's build-system, as a release build gets it; nothing of it stays in
# the virtualenv) and then installs it. Both steps fetch from the package index: setuptools, and the
# runtime dependencies (numpy, ml_dtypes, hypothesis, packaging). About 20 s.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
unset PYTHONPATH NORMCHECK_SPECS

TMP="$(mktemp -d "${TMPDIR:-/tmp}/normcheck-wheel-smoke.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m venv "$TMP/venv"

# Built from a copy of the files git tracks or would track (what a fresh clone has), so that neither
# stale build/ output nor ignored files of this checkout reach the wheel, and the checkout stays clean.
echo "wheel smoke: building the wheel"
mkdir "$TMP/src"
(
  cd "$ROOT"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [[ -f "$f" ]] && printf '%s\0' "$f"  # a file deleted but not yet staged is left out
  done | tar --null -T - -cf -
) | tar -xf - -C "$TMP/src"
"$TMP/venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$TMP/dist" "$TMP/src"
wheels=("$TMP"/dist/normcheck-*.whl)
[[ ${#wheels[@]} -eq 1 && -f "${wheels[0]}" ]] || { echo "wheel smoke: expected one normcheck wheel, got: ${wheels[*]}" >&2; exit 1; }

echo "wheel smoke: installing $(basename "${wheels[0]}") into the fresh virtualenv"
"$TMP/venv/bin/python" -m pip install -q --disable-pip-version-check "${wheels[0]}"

mkdir "$TMP/work"
cd "$TMP/work"

# The installed package, not the checkout, and its specs and findings registry from the wheel.
"$TMP/venv/bin/python" - "$TMP/venv" <<'EOF'
import sys
from pathlib import Path

import normcheck
from normcheck import findings, spec

venv = Path(sys.argv[1]).resolve()
for what, p in (("normcheck", Path(normcheck.__file__)), ("specs", spec.specs_dir())):
    if venv not in p.resolve().parents:
        sys.exit(f"wheel smoke: {what} comes from {p}, not from the fresh virtualenv {venv}")
norms, registered = spec.names(), findings.load()
if "layer_norm" not in norms or not registered:
    sys.exit(f"wheel smoke: specs {norms}, {len(registered)} findings in {spec.specs_dir()}")
print(f"wheel smoke: {len(norms)} specs and {len(registered)} findings in {spec.specs_dir()}")
EOF

"$TMP/venv/bin/normcheck" specs >specs.txt
grep -q '^layer_norm:' specs.txt || { echo "wheel smoke: normcheck specs lists no layer_norm" >&2; cat specs.txt >&2; exit 1; }
echo "wheel smoke: normcheck specs printed $(grep -c '^[a-z_]*:' specs.txt) norms"

cat >my_layer_norm.py <<'EOF'
import numpy as np


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x)
    k = 1 if isinstance(normalized_shape, int) else len(tuple(normalized_shape))
    axes = tuple(range(x.ndim - k, x.ndim))
    xf = x.astype(np.float64)
    y = (xf - xf.mean(axis=axes, keepdims=True)) / np.sqrt(xf.var(axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * np.asarray(weight, dtype=np.float64)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y.astype(x.dtype)
EOF
"$TMP/venv/bin/normcheck" check --norm layer_norm --profile quick --quiet my_layer_norm.py:layer_norm
echo "wheel smoke: ok"
