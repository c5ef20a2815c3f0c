"""``normcheck bench``: norms timed against the memory-bandwidth roof measured in the same run.

:mod:`~normcheck.bench.model` (byte model and shapes), :mod:`~normcheck.bench.roof` (machine and
copy roof), :mod:`~normcheck.bench.timer` (synchronized, warmed-up medians),
:mod:`~normcheck.bench.native` (each framework's native call on native arrays) and
:mod:`~normcheck.bench.run` (the matrix, JSON schema ``normcheck.bench/1``, performance findings).
"""
