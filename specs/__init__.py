"""The norm specs and the findings registry (``*.toml``), installed as the package ``normcheck.specs``.

pyproject.toml maps this folder to that package (``package-dir``), so the wheel ships the TOML files
as package data and an editable install finds them here; :func:`normcheck.spec.specs_dir` locates
them through the package.
"""
