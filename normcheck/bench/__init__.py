"""``normcheck bench``: norms timed against the memory-bandwidth roof measured in the same run.

:mod:`~normcheck.bench.model` (byte model and shapes), :mod:`~normcheck.bench.roof` (machine and
copy roof), :mod:`~normcheck.bench.timer` (synchronized, warmed-up medians),
:mod:`~normcheck.bench.native` (what every native call shares, and the matrix's modes and layouts)
and :mod:`~normcheck.bench.run` (the matrix, JSON schema ``normcheck.bench/1``, performance
findings). Each framework's own calls (its norms on its own arrays, its copy for the roof) are its
adapter's, ``normcheck/adapters/<framework>/bench.py``, behind ``Adapter.bench_natives()``: nothing
here imports a framework.
"""
