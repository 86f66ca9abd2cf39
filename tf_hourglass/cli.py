"""The one convention every command follows, and the helpers that implement it.

A command is a thin module (``tf_hourglass/train.py``, ``export/__main__.py``,
...) with its own ``absl.flags.FlagValues`` and a ``main(argv=None) -> int``
that parses them with :func:`parse_flags`, calls one library function and
returns the exit status: 0 done, 1 bad input (one line, ``NAME: error: ...``,
from :func:`fail`), 2 bad flags (one line), 0 after ``--help``. A failure of the
file system (a full disk, a read-only folder, from Python or TensorFlow) is
bad input too: one line ``PATH: strerror`` (:func:`fail_or_raise`). The module
ends with ``if __name__ == "__main__": sys.exit(main())``, and setup.cfg maps
the same ``main`` to a console script (``hourglass-train`` ...). Flags are
spelled ``--a-b`` or ``--a_b``.
"""

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


def parse_flags(
    command: str, flag_values: flags.FlagValues, argv: list[str], doc: str, check=None
) -> int | None:
    """Parses ``argv`` into ``flag_values`` for ``command``, whose help is ``doc``.

    Returns the exit status to stop with: 0 after printing the help, 2 after
    printing a bad flag in one line (``check`` may raise ``flags.Error`` for
    rules across flags); None when the command should go on.
    """
    if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
        print(doc + "\nFlags (--a-b and --a_b are the same flag):\n" + flag_values.get_help())
        return 0
    try:
        flag_values.unparse_flags()
        rest = flag_values(underscore_flag_names(argv))
        if len(rest) > 1:
            raise flags.Error(f"unexpected arguments: {' '.join(rest[1:])}")
        if check is not None:
            check()
    except flags.Error as e:
        message = " ".join(str(e).split())  # one line, whatever the flag's parser wrote
        print(f"{command}: error: {message}\nRun with --help for the flags.", file=sys.stderr)
        return 2
    return None


def fail(command: str, error: BaseException | str, status: int = 1) -> int:
    """Prints ``COMMAND: error: ...`` on one line to stderr; returns ``status`` to exit with.

    A file-system error reads ``PATH: No space left on device`` (``atomic_files.io_error``),
    not ``[Errno 28] No space left on device: 'PATH'``.
    """
    failure = _io_error(error) if isinstance(error, BaseException) else None
    print(f"{command}: error: {failure or error}", file=sys.stderr)
    return status


def fail_or_raise(command: str, error: BaseException, expected: tuple[type[BaseException], ...]) -> int:
    """``fail(command, error)`` for an ``expected`` error or a file-system failure; re-raises any other.

    For ``except Exception as error: return fail_or_raise("export", error, (ValueError, OSError))``:
    a full disk under TensorFlow (``ResourceExhaustedError``) is one line too, a bug keeps its traceback.
    """
    if isinstance(error, expected) or _io_error(error) is not None:
        return fail(command, error)
    raise error


def _io_error(error: BaseException):
    # Only errors that can be file-system ones: the others need not import TensorFlow to be printed.
    if not isinstance(error, OSError) and not type(error).__module__.startswith("tensorflow"):
        return None
    from tf_hourglass.atomic_files import io_error

    return io_error(error)
