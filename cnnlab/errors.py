"""User-facing errors.

A :class:`UserError` is something the user can fix (a bad param, missing data, a checkpoint of the
wrong architecture). Stages print it as one line, without a traceback, and exit with status 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class UserError(Exception):
    """An error caused by input the user controls; the message says what is wrong and how to fix it."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during work that can say where it stopped (e.g. ``plain-20-relu-bn-0 stopped at epoch 3/5; rerun
    to resume``): :func:`run_cli` prints ``interrupted: <message>``."""


def run_cli(main: Callable[[], object]) -> None:
    """Run a stage's ``main`` and turn a :class:`UserError` into a one-line message and exit code 2.

    Ctrl-C prints one line (``interrupted``, or ``interrupted: <where>`` for :class:`Interrupted`) and exits 130.

    SIGTERM (what ``kill`` and job schedulers send) raises ``SystemExit`` so that ``finally`` blocks run
    and temporary outputs are removed, as on Ctrl-C.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:
        print(f"interrupted: {err}" if isinstance(err, Interrupted) else "interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _terminate(signum: int, frame: object) -> None:
    print("terminated", file=sys.stderr)
    raise SystemExit(128 + signum)
