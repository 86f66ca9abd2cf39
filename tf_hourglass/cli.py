"""Small helpers shared by the command-line entry points."""

from __future__ import annotations


def underscore_flag_names(argv: list[str]) -> list[str]:
    """Accepts --num-shards as well as --num_shards (absl only knows the latter)."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, sep, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + sep + value
        out.append(arg)
    return out
