"""``optvol demo``: a narrated tour on a scratch library (DESIGN §4).

Write files to a primary, back it up, change a file, back up again (only the change is
copied), lose the primary, convert the backup, and show that every file and date is
there. Each step prints the command it runs and that command's real output.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import tempfile
import time
from io import StringIO

from optvol import errors
from optvol.cli import render
from optvol.cli.context import Context

FILES = {
    "/INVOICES/2026/JAN.TXT": "Invoice 1001, January 2026: 1,250.00\n",
    "/INVOICES/2026/FEB.TXT": "Invoice 1002, February 2026: 980.00\n",
    "/CONTRACTS/ACME.TXT": "Service contract with ACME, signed 2026-01-15.\n",
}


def handle(ctx: Context, values: dict) -> int:
    """The DEMO command (it has no parameters). It narrates: there is no JSON document to give."""
    if ctx.json:
        raise errors.error("OPV0008", reason="demo narrates a tour for a reader and has no --json form")
    return run(ctx)


def run(ctx: Context) -> int:
    given = ctx.library_arg is not None
    root = str(ctx.library().root) if given else tempfile.mkdtemp(prefix="optvol-demo-")  # (an empty one: OPV0006)
    if given:  # the tour makes PVOL1 and BVOL1: it needs a library without volumes
        held = ctx.library().volume_ids()
        if held:
            raise errors.error("OPV0006", library=ctx.library().root,
                               reason=f"the demo needs a new or empty library, and this one holds {', '.join(held)}")
    say = ctx.print
    say(f"optvol demo: a scratch library in {render.shown(str(root))}\n")
    host = tempfile.mkdtemp(prefix="optvol-demo-files-")

    def optvol(*args: str, show: bool = True, echo: bool = True, refused: bool = False) -> str:
        """Run one step; it must succeed (or, ``refused``, fail). An interrupted step ends the tour."""
        from optvol.cli import Terminated, main

        if echo:
            say(f"$ optvol {' '.join(shlex.quote(a) for a in args)}")
        out, err = StringIO(), StringIO()
        code = _run(main, ["--library", root, *args], out, err)
        if code == 130:  # the step caught Ctrl-C, SIGTERM or SIGHUP: so does the tour
            raise KeyboardInterrupt
        if code - 128 in (signal.SIGTERM, signal.SIGHUP):
            raise Terminated(code - 128)
        if show:
            for line in (out.getvalue() + err.getvalue()).rstrip().splitlines():
                say("  " + line)
        if (code != 0) != refused:
            raise errors.error("OPV0008", reason=f"demo step {'failed' if code else 'was not refused'}: "
                                                 f"optvol {' '.join(args)} (exit {code})")
        return out.getvalue()

    try:
        return _tour(ctx, root, host, say, optvol)
    finally:
        shutil.rmtree(host, ignore_errors=True)  # the host copies of the files (the library stays)


def _tour(ctx: Context, root: str, host: str, say, optvol) -> int:
    before = _back_up(say, optvol, host)
    say("\n6. Disaster: the primary volume is lost.")
    _lose(ctx, root, "PVOL1")
    say("  (volume PVOL1 removed from the library)")
    optvol("wrkoptvol")
    say("\n7. CVTOPTBKU turns the backup into the primary, under the lost primary's name.")
    optvol("cvtoptbku", "BVOL1")
    optvol("dspopt", "PVOL1")
    after = _files(optvol("--json", "dspopt", "PVOL1", "--data", "*FILATR", show=False, echo=False))
    say("\n8. Every file, byte and date of the lost primary is there:")
    for path, info in sorted(before.items()):
        same = after.get(path) == info
        say(f"  {'same' if same else 'DIFFERENT'}  {path}  modified {info['modified']}  sha256 {info['sha256'][:16]}...")
    optvol("cat", "/QOPT/PVOL1/INVOICES/2026/FEB.TXT")
    say("\n9. The converted volume is an ordinary primary now: user programs may write it again.")
    optvol("cp", os.path.join(host, "JAN.TXT"), "/QOPT/PVOL1/INVOICES/2026/JAN_COPY.TXT")
    if before != after:
        raise errors.error("OPV0008", reason="demo: the converted volume differs from the lost primary")
    # A path that prints is quoted for the shell alone (shown() quoted shlex's quotes again, and
    # the hint named another library: rev28h F4); one that does not is shown as every display shows it.
    hint = shlex.quote(str(root)) if str(root).isprintable() else render.shown(str(root))
    say(f"\nDone. The library stays in {render.shown(str(root))}: try `optvol --library {hint} wrkoptvol`.")
    return 0


def _back_up(say, optvol, host: str) -> dict:
    """Steps 1-5: two volumes, the application's files, two backups; what the primary holds."""
    say("1. Two volumes: a primary for the application, a backup that only CPYOPT may write.")
    optvol("inzopt", "PVOL1", "--text", "Invoices and contracts")
    optvol("inzopt", "BVOL1", "--type", "*BACKUP", "--text", "Backup of PVOL1")
    say("\n2. The application writes its files to the primary.")
    made = set()
    for path, text in FILES.items():
        local = os.path.join(host, os.path.basename(path))
        with open(local, "w") as handle:
            handle.write(text)
        directory = "/QOPT/PVOL1" + path.rsplit("/", 1)[0]
        if directory not in made:
            optvol("mkdir", "-p", directory, show=False)
            made.add(directory)
        optvol("cp", local, "/QOPT/PVOL1" + path)
    say("\n3. Back up the whole primary. Names and dates stay the primary's.")
    optvol("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    optvol("dspopt", "BVOL1", "--data", "*DIRATR")
    say("\n4. Nobody but CPYOPT writes a backup volume:")
    optvol("cp", os.path.join(host, "JAN.TXT"), "/QOPT/BVOL1/INVOICES/", refused=True)
    time.sleep(1.1)
    say("\n5. February's invoice is corrected on the primary; the next backup copies only that.")
    with open(os.path.join(host, "FEB.TXT"), "w") as handle:
        handle.write("Invoice 1002, February 2026: 890.00 (corrected)\n")
    optvol("cp", os.path.join(host, "FEB.TXT"), "/QOPT/PVOL1/INVOICES/2026/FEB.TXT")
    optvol("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    say("  (recording every file's size, dates and SHA-256: optvol --json dspopt PVOL1 --data '*FILATR')")
    return _files(optvol("--json", "dspopt", "PVOL1", "--data", "*FILATR", show=False, echo=False))


def _run(main, argv: list[str], out: StringIO, err: StringIO) -> int:
    return main(argv, out=out, err=err)


def _files(document: str) -> dict:
    return {f["path"]: {k: f[k] for k in ("size", "created", "modified", "attr_changed", "sha256")}
            for f in json.loads(document)}


def _lose(ctx: Context, root: str, volume: str) -> None:
    from optvol.cli.context import system_clock
    from optvol.library import Library

    Library(root, clock=system_clock).discard(volume)
