"""The command line's entry point: ``optvol`` (the installed script) and ``python -m optvol``.

It loads the command line (``optvol.cli``, a few hundred milliseconds on a busy machine)
only once it can take a Ctrl-C itself: an interrupt while it loads, or one that gets past
``cli.main``, ends optvol with ``optvol: interrupted`` and exit 130 (SIGTERM or SIGHUP
raised by ``cli.main``: ``ended by`` and 128 + the signal), never with a traceback."""

import sys


def run() -> int:
    try:
        from optvol.cli import main

        code = main()
        _quiet_ctrl_c()  # (inside: a Ctrl-C before it is one that got past main)
        return code
    except KeyboardInterrupt as exc:  # before main took over, or after it was done
        _quiet_ctrl_c()
        signum = getattr(exc, "signum", None)  # SIGTERM or SIGHUP as cli.main raises them
        print("optvol: interrupted" if signum is None else f"optvol: ended by {_name(signum)}", file=sys.stderr)
        return 130 if signum is None else 128 + signum


def _quiet_ctrl_c() -> None:
    """Once the exit code is decided, a Ctrl-C takes its default action, as SIGTERM does
    then: raised as the interpreter ends (threading's shutdown), Python printed it as
    "Exception ignored ... Traceback" (hunt31k F2). One the caller ignores stays ignored."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def _name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


if __name__ == "__main__":
    sys.exit(run())
