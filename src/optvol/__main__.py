"""The command line's entry point: ``optvol`` (the installed script) and ``python -m optvol``.

It loads the command line (``optvol.cli``, a few hundred milliseconds on a busy machine)
only once it can take a Ctrl-C itself: an interrupt while it loads, or one that gets past
``cli.main``, ends optvol with ``optvol: interrupted`` and exit 130 (SIGTERM or SIGHUP
raised by ``cli.main``: ``ended by`` and 128 + the signal), never with a traceback."""

import sys


def run() -> int:
    try:
        from optvol.cli import main

        return main()
    except KeyboardInterrupt as exc:  # before main took over, or after it was done
        signum = getattr(exc, "signum", None)  # SIGTERM or SIGHUP as cli.main raises them
        print("optvol: interrupted" if signum is None else f"optvol: ended by {_name(signum)}", file=sys.stderr)
        return 130 if signum is None else 128 + signum


def _name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


if __name__ == "__main__":
    sys.exit(run())
