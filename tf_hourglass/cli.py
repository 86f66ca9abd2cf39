"""Small helpers shared by the command-line entry points."""

from __future__ import annotations

import sys

from absl import flags


def underscore_flag_names(argv: list[str]) -> list[str]:
    """Accepts --num-shards as well as --num_shards (absl only knows the latter)."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, sep, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + sep + value
        out.append(arg)
    return out


def parse_flags(flag_values: flags.FlagValues, argv: list[str], doc: str, check=None) -> int | None:
    """Parses ``argv`` into ``flag_values`` for a command whose help is ``doc``.

    Returns the exit status to stop with: 0 after printing the help, 2 after
    printing a bad flag in one line (``check`` may raise ``flags.Error`` for
    rules across flags); None when the command should go on.
    """
    if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
        print(doc + "\nFlags (--a-b and --a_b are the same flag):\n" + flag_values.get_help())
        return 0
    try:
        flag_values.unparse_flags()
        flag_values(underscore_flag_names(argv))
        if check is not None:
            check()
    except flags.Error as e:
        print(f"error: {e}\nRun with --help for the flags.", file=sys.stderr)
        return 2
    return None
