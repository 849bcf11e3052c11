"""A Ctrl-C that comes once optvol's command is done, while the interpreter ends (threading's
shutdown, where Python prints what a handler raises as "Exception ignored ... Traceback"), ends
it quietly, as a SIGTERM then does: optvol's start-up promises "never with a traceback" (hunt31k F2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The launcher as installed; the command (a stand-in) is done and has said so; a real SIGINT
# comes as the interpreter ends (threading's exit hooks: the moment a late Ctrl-C lands there).
CODE = textwrap.dedent("""
    import os, signal, sys, threading
    from optvol import __main__, cli
    def main():
        print("done")
        threading._register_atexit(lambda: os.kill(os.getpid(), signal.SIGINT))
        return 0
    cli.main = main
    sys.exit(__main__.run())
""")


def test_a_ctrl_c_as_the_interpreter_ends_is_no_traceback():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert done.stdout == "done\n"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode in (0, -2)  # the command's code, or ended by the Ctrl-C at once (a shell's 130)


def test_an_ignored_ctrl_c_stays_ignored():
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + CODE
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
