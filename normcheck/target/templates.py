"""``--init``: a module target's constructor arguments as a template with placeholders (``{C}``, ``{eps}``)."""

from __future__ import annotations

from normcheck.target.errors import TargetError, first_line

#: ``--init`` placeholders and the role each fills.
PLACEHOLDERS = {
    "C": "features",
    "normalized_shape": "features",
    "G": "groups",
    "eps": "eps",
    "momentum": "momentum",
    "affine": "affine",
    "bias": "bias",
    "track": "track",
}


def parse_template(text: str):
    """``--init``'s argument list, as a compiled ``_call(...)`` expression and the placeholders it uses."""
    import ast
    import re

    used: list[str] = []

    def sub(m):
        name = m.group(1)
        if name not in PLACEHOLDERS:
            raise TargetError(
                f"--init: unknown placeholder {{{name}}}; known: {', '.join('{' + k + '}' for k in PLACEHOLDERS)}"
            )
        used.append(name)
        return f"__nc_{name}"

    body = re.sub(r"\{(\w*)\}", sub, text)
    try:
        tree = ast.parse(f"_call({body})", mode="eval")
    except SyntaxError as e:
        raise TargetError(f"--init: {text!r} is not a Python argument list ({e.msg})") from None
    call = tree.body
    if (
        not isinstance(call, ast.Call)
        or any(isinstance(a, ast.Starred) for a in call.args)
        or any(k.arg is None for k in call.keywords)
    ):
        raise TargetError(f"--init: {text!r} must be plain positional and keyword arguments (no * or **)")
    return tree, call, compile(tree, "<--init>", "eval"), tuple(dict.fromkeys(used))


_TEMPLATE_BUILTINS = {"tuple": tuple, "list": list, "int": int, "float": float, "bool": bool, "str": str}


def evaluate_template(code, used, values: dict) -> tuple[list, dict]:
    """(args, kwargs) of a parsed template's ``code`` with ``values`` for the placeholders it ``used``."""
    ns_ = {"_call": lambda *a, **k: (list(a), k), **{f"__nc_{k}": values[k] for k in used}}
    try:
        return eval(code, {"__builtins__": _TEMPLATE_BUILTINS}, ns_)  # the user's own --init text
    except Exception as e:
        raise TargetError(f"--init: could not evaluate the arguments: {first_line(e)}") from None


def ast_unparse(call) -> str:
    import ast
    import re

    text = ", ".join([ast.unparse(a) for a in call.args] + [f"{k.arg}={ast.unparse(k.value)}" for k in call.keywords])
    return re.sub(r"__nc_(\w+)", r"{\1}", text)
