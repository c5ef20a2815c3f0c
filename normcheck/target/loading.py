"""Loading a target: ``package.module:attr`` or ``path/to/file.py:attr`` (the file loaded with its own
folder on ``sys.path`` while it loads, as a script would expect)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

from normcheck.target.errors import TargetError, first_line


def is_file_ref(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or os.sep in ref


_loaded_files: dict[str, types.ModuleType] = {}


def _load_file(ref: str) -> types.ModuleType:
    path = Path(ref).expanduser()
    if not path.is_file():
        raise TargetError(f"file not found: {ref}")
    path = path.resolve()
    key = str(path)
    if key in _loaded_files:
        return _loaded_files[key]
    name = "_normcheck_target_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"{name}_{len(_loaded_files)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {ref} as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses, pickling and the like look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # the user's file raised while loading (SystemExit included)
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TargetError(f"could not load {ref}: {first_line(e)}") from e
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    _loaded_files[key] = module
    return module


def _import(modname: str) -> types.ModuleType:
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name and (modname == e.name or modname.startswith(e.name + ".")):
            raise TargetError(f"no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from e
        raise TargetError(f"could not import {modname}: {first_line(e)}") from e
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TargetError(f"could not import {modname}: {first_line(e)}") from e


def load(ref: str) -> Any:
    """The object ``ref`` names: ``package.module:attr`` or ``path/to/file.py:attr``.

    Raises :class:`TargetError` (one line) when the reference is malformed, the file is missing,
    the import fails (naming the module and the exception's first line), the attribute is missing
    or the object is not callable.
    """
    if not isinstance(ref, str) or ":" not in ref:
        raise TargetError(f"TARGET must be 'package.module:attr' or 'path/to/file.py:attr', got {ref!r}")
    where, _, attr = ref.rpartition(":")
    if not where or not attr:
        raise TargetError(f"TARGET must be 'package.module:attr' or 'path/to/file.py:attr', got {ref!r}")
    module = _load_file(where) if is_file_ref(where) else _import(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            owner = where if obj is module else f"{where}:{attr.rsplit('.', 1)[0]}"
            raise TargetError(f"{owner} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TargetError(f"{ref} is not callable (it is a {type(obj).__name__})")
    return obj


def describe(obj: Any) -> str:
    """A short name for a target object: ``module:qualname``."""
    mod = getattr(obj, "__module__", None) or "?"
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    for path, m in _loaded_files.items():
        if m.__name__ == mod:
            return f"{Path(path).name}:{qual}"
    return f"{mod}:{qual}"
