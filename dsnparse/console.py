"""The ``dsnparse`` console script and ``python -m dsnparse``: :mod:`dsnparse.cli`, started
the way a fresh process per bounce wants it (see :mod:`dsnparse.startup`).

For ``pipe`` and ``parse`` the start-up of :mod:`dsnparse.startup` begins before
:mod:`dsnparse.cli` and the modules it needs are imported (their dataclasses are created on
import); ``pipe``, and ``parse`` reading standard input alone, end without interpreter
finalization once their output is flushed.  Every other command runs as before.  Output and
exit status are those of :func:`dsnparse.cli.main`.
"""
from __future__ import annotations

import sys


def main() -> None:
    """Run the command of ``sys.argv`` and exit with its status (never returns)."""
    from . import startup

    one_message = startup.command_word(sys.argv[1:]) in startup.ONE_MESSAGE_COMMANDS
    if one_message:
        startup.begin(sys.argv[1:])  # (ended before the first message is read)
    try:
        from .cli import one_message_run, run_command

        status, args = run_command(None)
    finally:
        startup.resume_collector()
    if one_message and one_message_run(args):
        startup.exit_now(status)  # returns only when the normal exit is needed
    sys.exit(status)
