"""Load a user's norm implementation ("the target") and call it with the canonical convention.

``normcheck check TARGET`` and :func:`normcheck.check` accept

- ``package.module:attr`` (imported with :mod:`importlib`), or ``path/to/file.py:attr`` (loaded
  from the file, with the file's own folder on ``sys.path`` while it loads, as a script would
  expect); ``attr`` may be dotted (``module:Class.method``);
- a **function** with the canonical signature of its norm (the ``torch.nn.functional`` one, as
  :mod:`normcheck.reference`), taking and returning arrays of its framework. Arguments are passed
  positionally in the canonical order, so parameter names are free. Torch-convention running
  buffers are updated in place; a JAX/TensorFlow function (immutable arrays) may instead return
  ``(y, new_running_mean, new_running_var)``;
- a **module** class, driven the way its users run it (:class:`Constructor`, :func:`wrap`):

  * constructed as its own signature says (``inspect.signature``): the canonical arguments are
    mapped by name and by the aliases real code uses (:data:`ALIASES`: ``hidden_size``, ``dim``,
    ``num_channels``; ``epsilon``, ``variance_epsilon``; ``elementwise_affine``, ``use_bias``...), in
    the torch.nn positional order where names do not say (:data:`ROLE_ORDER`; a class taking only
    ``*args`` is called like the torch.nn layer, :data:`CONSTRUCTORS`). ``--init`` gives the
    argument list as a template (:data:`PLACEHOLDERS`), ``--arg`` pins values (a pinned canonical
    argument is fixed in the drawn cases too). A constructor that cannot be called is a
    :class:`TargetError` naming the call tried. eps=None (the default) passes no eps where the
    constructor has a default, and the cases then use that default; eps, momentum or a group count
    the constructor does not take are read from the built layer's attributes and pinned;
  * its ``weight``/``bias`` (or ``scale``/``gamma``/``beta``, :data:`PARAM_ATTRS`) and
    ``running_mean``/``running_var`` are set from the case; the layer follows the case's dtype as
    ``module.to(dtype)`` does, except that with the canonical float32 running buffers of a 16-bit
    case its parameters stay float32 with them (the mixed-precision layout; torch's batch-norm
    kernels accept no other); ``train()``/``eval()`` is driven by normcheck, under ``no_grad``;
  * one instance carries on across calls that continue each other (the buffers passed in are the
    ones the previous call left): a state property's train -> eval sequence sees buffer updates in
    eval, a ``num_batches_tracked`` that never moves, statistics chosen by grad mode;
  * the ranks it accepts are inferred (a class name ending in 1d/2d/3d, else one small call per
    rank), unless ``--rank``/``--shape`` say; a restriction is a note, never a deviation.

  torch-style modules (and duck-typed classes of other frameworks with the same attributes) are
  driven so; a **Keras layer** class and a **flax.linen module** class are constructed like the
  framework's own layer and driven by the framework's adapter, exactly as the native layer is
  (``flax.nnx`` classes are not yet); **Equinox, Haiku and Sonnet** module classes, a Keras class
  with a constructor of its own (Keras-Hub's) and a Keras or linen class given ``--init``/``--arg``
  are mapped like torch classes and run by their ecosystem's driver (:attr:`normcheck.adapters.Adapter.ecosystems`,
  an adapter module each: vmap and ``eqx.tree_at``, ``hk.transform_with_state``, Sonnet's first
  call, ``stateless_call``, linen ``apply``), parameters and state passed in functionally.

:func:`wrap` turns the target into a :class:`Target`, a callable with the canonical NumPy
convention of :mod:`normcheck.adapters.base` (NumPy in, NumPy out, buffers updated in place), so
every property of :mod:`normcheck.properties` can drive it. Every call runs in a worker thread
under a per-call timeout (:class:`Guard`); after one call hangs, every later call raises
:class:`TargetHung` at once (a hung thread cannot be killed: it is abandoned, as a daemon).
In-place modifications of the input, weight or bias are copied back into the NumPy arrays the
call was given, so the ``contracts`` property sees them.

Framework inference (:func:`infer_framework`) never imports a framework: it tries the frameworks
already in ``sys.modules`` (those the target's module names first) on a small float32 case and
picks the one whose array type the target returns.

The package, one module per job: :mod:`~normcheck.target.loading` (a reference to an object),
:mod:`~normcheck.target.guard` (the per-call timeout), :mod:`~normcheck.target.frameworks` and
:mod:`~normcheck.target.inference` (which framework), :mod:`~normcheck.target.constructor` and
:mod:`~normcheck.target.templates` (the constructor call), :mod:`~normcheck.target.canonical` (a call's
canonical arguments), :mod:`~normcheck.target.layer` (a built layer's attributes),
:mod:`~normcheck.target.calling` (:class:`Target`, the call path), :mod:`~normcheck.target.probes`,
:mod:`~normcheck.target.constraints`, :mod:`~normcheck.target.prepare` (a module target's first build)
and :mod:`~normcheck.target.wrapping` (:func:`wrap`, :func:`repro_setup`). This package re-exports the
names the rest of normcheck uses.
"""

from normcheck.target.calling import Target
from normcheck.target.constructor import ALIASES, CONSTRUCTORS, ROLE_ORDER, Canon, Constructor
from normcheck.target.errors import BadOutput, ConstructionError, TargetError, TargetHung
from normcheck.target.frameworks import TARGET_FRAMEWORKS
from normcheck.target.guard import DEFAULT_TIMEOUT, NEW_SIGNATURE_FACTOR, Guard
from normcheck.target.inference import infer_framework
from normcheck.target.loading import describe, load
from normcheck.target.templates import PLACEHOLDERS
from normcheck.target.wrapping import FORMS, repro_setup, wrap

__all__ = [
    "ALIASES",
    "CONSTRUCTORS",
    "DEFAULT_TIMEOUT",
    "FORMS",
    "NEW_SIGNATURE_FACTOR",
    "PLACEHOLDERS",
    "ROLE_ORDER",
    "TARGET_FRAMEWORKS",
    "BadOutput",
    "Canon",
    "ConstructionError",
    "Constructor",
    "Guard",
    "Target",
    "TargetError",
    "TargetHung",
    "describe",
    "infer_framework",
    "load",
    "repro_setup",
    "wrap",
]
