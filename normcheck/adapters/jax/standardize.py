"""``jax.nn.standardize`` as a norm implementation (layer_norm, instance_norm and batch_norm's
statistics, no affine, no running buffers), across the releases whose function has or lacks the
``algorithm`` parameter (jax 0.10.1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.adapters.base import Unsupported, spell_axes
from normcheck.adapters.jax.runtime import put

__all__ = ["standardize", "standardize_has_algorithm", "standardize_options"]


def standardize_has_algorithm() -> bool:
    """Does the installed ``jax.nn.standardize`` take ``algorithm`` (jax >= 0.10.1)? Before, it has
    only the one-pass variance, which is ``algorithm="fast"``."""
    import inspect

    import jax

    try:
        return "algorithm" in inspect.signature(jax.nn.standardize).parameters
    except (TypeError, ValueError):
        return False


def standardize_options(config: dict[str, Any]) -> dict[str, Any]:
    """``jax.nn.standardize``'s keyword options of a configuration: before jax 0.10.1, which has no
    ``algorithm`` parameter, "fast" (its only variance) is left out and "stable" is Unsupported."""
    options = dict(config)
    if "algorithm" in options and not standardize_has_algorithm():
        if options.pop("algorithm") != "fast":
            import jax

            raise Unsupported(
                f"jax {jax.__version__}'s jax.nn.standardize has no algorithm parameter (added in jax 0.10.1): "
                "only its one-pass variance, algorithm='fast'"
            )
    return options


def standardize(norm: str, a: dict[str, Any], config: dict[str, Any]) -> np.ndarray:
    """``jax.nn.standardize`` over the norm's axis set, where no affine or running statistics are asked."""
    import jax

    x = np.asarray(a["input"])
    if a.get("weight") is not None or a.get("bias") is not None:
        raise Unsupported("jax.nn.standardize has no affine parameters")
    if a.get("running_mean") is not None or a.get("running_var") is not None:
        raise Unsupported("jax.nn.standardize keeps no running statistics")
    flag = _spec.get(norm).batch_stats_flag
    if flag and not a[flag]:
        raise Unsupported("jax.nn.standardize is used here with the input's statistics only")
    p = _spec.plan(norm, x.shape, normalized_shape=a.get("normalized_shape"))
    if norm not in ("batch_norm", "instance_norm", "layer_norm"):
        raise Unsupported(f"{norm} is not a standardization")
    options = standardize_options(config)
    axis = spell_axes(p.reduce, x.ndim, options.pop("axis_spelling", "positive"))
    y = jax.nn.standardize(put(x), axis=axis, epsilon=float(a["eps"]), **options)
    return np.array(y)
