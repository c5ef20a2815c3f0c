"""The conventions-table probes of the Keras layers and ``tf.nn.batch_normalization``: each layer behind the uniform
:class:`normcheck.conventions.Probe` call, measured by :func:`normcheck.conventions.measure`.
"""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

__all__ = ["probes"]


def probes() -> list[Probe]:
    from normcheck.adapters import tensorflow as tfa

    keras, tf = tfa.import_keras(), tfa.import_tensorflow()

    def keras_probe(norm, cls_name, fixed=None, stateful=False, notes="") -> Probe:
        fixed = fixed or {}
        cls = getattr(keras.layers, cls_name)

        def run(x, training, momentum=DEFAULT, state=None):
            kw = dict(fixed)
            if momentum is not DEFAULT:
                kw["momentum"] = momentum
            layer = cls(**kw)
            layer.build(x.shape)
            if stateful and state is not None:
                layer.moving_mean.assign(np.asarray(state[0]))
                layer.moving_variance.assign(np.asarray(state[1]))
            y = layer(tf.convert_to_tensor(x), training=training).numpy()
            new = (layer.moving_mean.numpy(), layer.moving_variance.numpy()) if stateful else None
            return y, new

        def axis():
            layer = cls(**fixed)
            layer.build((2, 3, 4, 5))
            w = layer.scale if cls_name == "RMSNormalization" else layer.gamma
            return {(3,): "1", (5,): "-1"}.get(tuple(w.shape), f"gamma shape {tuple(w.shape)}")

        switch = "layer(x, training=bool)" if stateful else ""
        return Probe("tensorflow", norm, f"keras.layers.{cls_name}", run, axis, switch, stateful, notes=notes)

    def tfnn_run(x, training, momentum=DEFAULT, state=None):
        mean, var = tf.nn.moments(tf.convert_to_tensor(x), axes=[0, 2], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, None, None).numpy(), None  # no variance_epsilon

    return [
        keras_probe("batch_norm", "BatchNormalization", stateful=True),
        keras_probe("layer_norm", "LayerNormalization"),
        keras_probe("group_norm", "GroupNormalization", {"groups": 1}, notes="groups=1 given (default 32)"),
        # RMSNormalization is new in Keras 3.9: an older Keras has no row for it
        *([keras_probe("rms_norm", "RMSNormalization")] if hasattr(keras.layers, "RMSNormalization") else []),
        Probe(
            "tensorflow",
            "batch_norm",
            "tf.nn.batch_normalization",
            tfnn_run,
            None,
            eps_required=True,
            modes=False,
            notes="a function of given statistics: no state, no layout",
        ),
    ]
