"""The command line's entry point: ``optvol`` (the installed script) and ``python -m optvol``.

It loads the command line (``optvol.cli``, a few hundred milliseconds on a busy machine)
only once it can take a Ctrl-C itself: an interrupt while it loads, or after the command
has printed its last line, ends optvol with ``optvol: interrupted`` and exit 130, never
with a traceback. Nothing has been written then."""

import sys


def run() -> int:
    try:
        from optvol.cli import main

        return main()
    except KeyboardInterrupt:  # before main took over, or after it was done
        print("optvol: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
