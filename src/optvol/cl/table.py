"""The command table: the one definition of every command's parameters (DESIGN §2, §4).

The CL parser, the shell subcommands and their ``--help`` are all derived from this
table. A command's parameters are keyword, position, type, element list, special values,
default and help text; ``parse_values`` turns the texts either front door collected into
one dict of Python values with the defaults filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from optvol import errors
from optvol.cl import values as v


def written(value: str | list | None) -> str:
    """A value as CL writes it, for an error to quote: a list in parentheses, ``*N`` for one
    left out (``(X Y)``, never a Python list's repr)."""
    if isinstance(value, list):
        return "(" + " ".join(written(item) for item in value) + ")"
    return "*N" if value is None else str(value)


@dataclass(frozen=True)
class Param:
    """One parameter (or one element of an element list)."""

    keyword: str
    type: str
    help: str
    position: int | None = None
    required: bool = False
    default: str | None = None
    specials: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] = ()  # the only numbers an INT takes (CCSID: 500, 850)
    elements: tuple[Param, ...] = ()
    multiple: bool = False  # several values (cp SOURCE ...)
    short: str | None = None  # the shell's one-letter switch of a FLAG

    def parse(self, text: str | bool | list, *, cl: bool = False) -> object:
        """The Python value of this parameter's text (a list of texts for ``multiple``);
        ``cl``: given in CL, where a special value needs its ``*`` (``values.parse``)."""
        if self.type == v.FLAG:
            return bool(text)
        if self.multiple:
            return [self._one(t, cl) for t in text]
        if self.elements:
            return self._elements(text, cl)
        return self._one(text, cl)

    def _one(self, text: str, cl: bool = False) -> object:
        return v.parse(text, keyword=self.keyword, type=self.type, specials=self.specials, low=self.low, high=self.high,
                       choices=self.choices, cl=cl)

    def _elements(self, text: str | list, cl: bool = False) -> tuple:
        """An element list's values. An element may be a list of its own (``SLTDATE(*MODIFIED
        (*AVAIL '01/01/26'))``); ``*N`` (None from CL) leaves an element out, as does the end."""
        if isinstance(text, str) and not text.strip():  # CL refuses FROMTIME() too; defaults come from leaving it out
            raise errors.error("OPV0005", value=text, keyword=self.keyword, reason="a value is missing")
        texts = text if isinstance(text, list) else v.split_elements(text, keyword=self.keyword)
        if not cl:  # *N is an omitted element in the shell's word too, as CL writes it ('PVOL2 *N')
            texts = [None if isinstance(t, str) and not isinstance(t, v.Quoted) and v.fold(t) == "*N" else t
                     for t in texts]  # quoted, '*N' is text, as in CL
        if len(texts) > len(self.elements):
            raise errors.error("OPV0005", value=written(text), keyword=self.keyword,
                               reason=f"at most {len(self.elements)} elements")
        parsed = []
        for index, element in enumerate(self.elements):
            given = texts[index] if index < len(texts) else None
            if given is not None:
                parsed.append(self._element(index, element, given, cl))
            elif element.default is not None:
                parsed.append(element.parse(element.default))
            elif element.required:
                raise errors.error("OPV0005", value=written(text), keyword=self.keyword,
                                   reason=f"element {element.keyword} is required")
            else:
                parsed.append(None)
        return tuple(parsed)

    def _element(self, index: int, element: Param, text: str | list, cl: bool) -> object:
        """One element's value; its error names the keyword too (``FROMVOL element 2``)."""
        try:
            if isinstance(text, list) and not element.elements:
                raise errors.error("OPV0005", value=written(text), keyword=element.keyword, reason="a list is not allowed here")
            if isinstance(text, list) and not text:  # an inner () as CL refuses FROMTIME()
                raise errors.error("OPV0005", value="()", keyword=element.keyword, reason="a value is missing")
            return element.parse(text, cl=cl)
        except errors.OptvolError as exc:  # the keyword is this one (an OPV0001's names the element's)
            text = exc.text.replace(f"(keyword {element.keyword})", f"(keyword {self.keyword})")
            raise type(exc)(exc.message_id, f"{self.keyword} element {index + 1}: {text}") from None

    @property
    def shell_option(self) -> str:
        return "--" + self.keyword.lower()


@dataclass(frozen=True)
class Command:
    """One command: its name in CL (upper case) and in the shell (lower case)."""

    name: str
    help: str
    params: tuple[Param, ...]
    shell: str = ""
    cl: bool = True  # reachable through ``optvol cl``
    group: str = field(default="volume", compare=False)
    aliases: tuple[str, ...] = ()  # other CL names IBM gives it (DEL for RMVLNK)

    @property
    def shell_name(self) -> str:
        return self.shell or self.name.lower()

    def param(self, keyword: str) -> Param:
        for param in self.params:
            if param.keyword == keyword.upper():
                return param
        raise errors.error("OPV0005", value=keyword, keyword=self.name, reason="no such keyword")

    @property
    def positional(self) -> list[Param]:
        return sorted((p for p in self.params if p.position), key=lambda p: p.position)

    def parse_values(self, given: dict[str, object], *, cl: bool = False) -> dict[str, object]:
        """Parse every given text (``cl``: by CL's rules), fill defaults, check required keywords."""
        result: dict[str, object] = {}
        for param in self.params:
            if param.keyword in given and given[param.keyword] is not None:
                result[param.keyword] = param.parse(given[param.keyword], cl=cl)
            elif param.required:
                raise errors.error("OPV0005", value="", keyword=param.keyword, reason=f"{self.name} needs a value")
            elif param.elements:
                result[param.keyword] = param.parse([])
            elif param.default is not None:
                result[param.keyword] = param.parse(param.default)
            else:
                result[param.keyword] = False if param.type == v.FLAG else None
        return result


YES_NO = ("*YES", "*NO")
_VOL = "Volume identifier: 1-32 characters A-Z 0-9 - _ . (folded to upper case)."
_IGNORED = " (accepted for IBM's scripts and ignored: volumes live in the library)."
END_OPTIONS = ("*LEAVE", "*UNLOAD")


def _p(keyword: str, type: str, help: str, **kw) -> Param:
    return Param(keyword, type, help, **kw)


COMMANDS: tuple[Command, ...] = (
    Command("INZOPT", "Initialize an optical volume (creates it when the library does not hold it).", (
        _p("VOL", v.VOLUME, _VOL + " *MOUNTED, IBM's default, is a new blank medium: it needs NEWVOL, the ID of the "
           "volume it creates.", position=1, default="*MOUNTED", specials=("*MOUNTED",)),
        _p("NEWVOL", v.VOLUME, "New volume identifier, or *VOL to keep it.", position=2, default="*VOL", specials=("*VOL",)),
        _p("DEV", v.NAME, "Device name" + _IGNORED),
        _p("THRESHOLD", v.INT, "Volume-full threshold in percent, or *CALC.", default="*CALC", specials=("*CALC",), low=1, high=100),
        _p("CHECK", v.SPECIAL, "*YES refuses a volume that holds files.", default="*YES", specials=YES_NO),
        _p("ENDOPT", v.SPECIAL, "What the device does with the medium afterwards" + _IGNORED, default="*LEAVE",
           specials=END_OPTIONS),
        _p("CLEAR", v.SPECIAL, "Erase existing data (re-initializing always erases).", default="*NO", specials=YES_NO),
        _p("TEXT", v.TEXT, "Description, up to 50 characters, or *BLANK.", default="*BLANK", specials=("*BLANK",)),
        _p("TYPE", v.SPECIAL, "Volume type.", default="*PRIMARY", specials=("*PRIMARY", "*BACKUP")),
        _p("CCSID", v.INT, "Coded character set of the volume's names: *CALC, 500 or 850 (accepted for IBM's scripts "
           "and ignored: names are stored in Unicode).", default="*CALC", specials=("*CALC",), choices=(500, 850)),
        _p("MEDFMT", v.SPECIAL, "Media format; *MEDTYPE chooses by media type.", default="*MEDTYPE", specials=("*MEDTYPE", "*HPOFS", "*UDF")),
        _p("MEDTYPE", v.SPECIAL, "Media type of a new volume (optvol extension).", default="*SAME", specials=("*SAME", "*WORM", "*ERASE", "*DVD-RAM")),
        _p("CAPACITY", v.SIZE, "Capacity in bytes, K/M/G/T suffix allowed (powers of 1024), from 1M to 8388608T less one byte "
           "(optvol extension).", default="*MEDTYPE", specials=("*MEDTYPE",)),
        _p("BLKSIZE", v.INT, "Sector size in bytes (optvol extension).", default="*MEDTYPE", specials=("*MEDTYPE",), low=512, high=65536),
    )),
    Command("CHGOPTVOL", "Change the threshold, text or authorization list of a volume.", (
        _p("VOL", v.VOLUME, _VOL, position=1, required=True),
        _p("THRESHOLD", v.INT, "Volume-full threshold 1-100, or *SAME.", position=2, default="*SAME", specials=("*SAME",), low=1, high=100),
        _p("AUTL", v.NAME, "Authorization list, *NONE or *SAME (kept by the library).", position=3, default="*SAME", specials=("*SAME", "*NONE")),
        _p("TEXT", v.TEXT, "Description, *BLANK or *SAME.", default="*SAME", specials=("*SAME", "*BLANK")),
    )),
    Command("DSPOPT", "Display volume, directory or file attributes.", (
        _p("VOL", v.GENERIC, "Volume identifier, generic name (ABC*) or *ALL.", position=1, required=True, specials=("*ALL",)),
        _p("DEV", v.NAME, "Device name, or *ALL" + _IGNORED, position=2, default="*ALL", specials=("*ALL",)),
        _p("DATA", v.SPECIAL, "What to show; *BKUHST (optvol) is the CPYOPT request log of a backup volume.",
           position=3, default="*VOLATR", specials=("*VOLATR", "*DIRATR", "*FILATR", "*BKUHST")),
        _p("PATH", v.PATH, "Directory or file path from / (a generic last element allowed: /DIR/AB*), or *ALL.", default="*ALL", specials=("*ALL",)),
        _p("OUTPUT", v.SPECIAL, "Where it goes: * or *PRINT, both standard output (accepted for IBM's scripts).",
           default="*", specials=("*", "*PRINT")),
    )),
    Command("WRKOPTVOL", "List the volumes of the library.", (
        _p("VOL", v.GENERIC, "Volume identifier, generic name (ABC*) or *ALL.", position=1, default="*ALL", specials=("*ALL",)),
    )),
    Command("WRKOPTDIR", "List the directories of a volume.", (
        _p("DIR", v.PATH, "Directory to start from, or *ALL.", position=1, default="*ALL", specials=("*ALL",)),
        _p("VOL", v.VOLUME, _VOL, position=2, required=True),
        _p("SORT", v.SPECIAL, "Order: by directory name or by creation date.", position=3, default="*DIR",
           specials=("*DIR", "*DATE")),
        _p("SLTLVL", v.INT, "Directory levels to list, or *ALL.", default="*ALL", specials=("*ALL",), low=1, high=1000),
        _p("STRDATE", v.DATE, "Only directories created on or after this date, or *AVAIL.", default="*AVAIL",
           specials=("*AVAIL",)),
    )),
    Command("WRKOPTF", "List the files of a volume directory.", (
        _p("VOL", v.VOLUME, _VOL, position=1, required=True),
        _p("DIR", v.PATH, "Directory, or *ALL for every directory.", position=2, required=True, specials=("*ALL",)),
        _p("FILE", v.TEXT, "File name, generic name (ABC*), *ALL, or *SELECT to select by SLTFILE and SLTDATE.",
           position=3, default="*ALL", specials=("*ALL", "*SELECT")),
        _p("SLTFILE", v.TEXT, "With FILE(*SELECT): the files from one name to another, in name order.", elements=(
            _p("FROM", v.TEXT, "From file: a name, a generic name (ABC*) or *ALL.", default="*ALL", specials=("*ALL",)),
            _p("TO", v.TEXT, "To file: a name, a generic name, or *ALL for no last one; left out, the from file's "
               "names only.", specials=("*ALL",)),
        )),
        _p("SLTDATE", v.TEXT, "With FILE(*SELECT): the files created (or modified) from one moment to another.", elements=(
            _p("TYPE", v.SPECIAL, "Which date: *CREATED or *MODIFIED.", default="*CREATED", specials=("*CREATED", "*MODIFIED")),
            _p("START", v.TEXT, "Starting (time date), in parentheses: time HH:MM:SS, HHMMSS or *AVAIL (the start of "
               "the day); date MM/DD/YYYY, MM/DD/YY, MMDDYYYY, MMDDYY or YYYY-MM-DD, or *BEGIN", default="*AVAIL *BEGIN", elements=(
                _p("TIME", v.TIME, "Starting time HH:MM:SS or HHMMSS, or *AVAIL (the start of the day).", default="*AVAIL",
                   specials=("*AVAIL",)),
                _p("DATE", v.DATE, "Starting date, or *BEGIN.", default="*BEGIN", specials=("*BEGIN",)),
            )),
            _p("END", v.TEXT, "Ending (time date), in parentheses: time, or *AVAIL (the end of the day); date, or *END",
               default="*AVAIL *END", elements=(
                _p("TIME", v.TIME, "Ending time, or *AVAIL (the end of the day).", default="*AVAIL", specials=("*AVAIL",)),
                _p("DATE", v.DATE, "Ending date, or *END.", default="*END", specials=("*END",)),
            )),
        )),
    )),
    # IFS commands (reference §10.9)
    Command("CPY", "Copy a file (with SUBTREE(*ALL) a directory tree) to or from /QOPT paths.", (
        _p("OBJ", v.PATH, "What to copy: a /QOPT/<volume>/... path or a host path.", position=1, required=True),
        _p("TOOBJ", v.PATH, "The new object's path (give TOOBJ or TODIR).", position=2),
        _p("TODIR", v.PATH, "The directory to copy into, keeping the name (give TOOBJ or TODIR)."),
        _p("SUBTREE", v.SPECIAL, "*ALL copies a directory with everything below it.", default="*NONE", specials=("*NONE", "*ALL")),
        _p("REPLACE", v.SPECIAL, "Replace an existing target file.", default="*NO", specials=YES_NO),
    ), aliases=("COPY",), group="ifs"),
    Command("MOV", "Move a file or directory (a rename within one volume; across volumes a copy, then a delete).", (
        _p("OBJ", v.PATH, "What to move: a /QOPT/<volume>/... path.", position=1, required=True),
        _p("TOOBJ", v.PATH, "The new path (give TOOBJ or TODIR).", position=2),
        _p("TODIR", v.PATH, "The directory to move into, keeping the name (give TOOBJ or TODIR)."),
    ), aliases=("MOVE",), group="ifs"),
    Command("RNM", "Rename a file or directory in its directory.", (
        _p("OBJ", v.PATH, "The /QOPT/<volume>/... path to rename.", position=1, required=True),
        _p("NEWOBJ", v.PATH, "The new name (a name, not a path).", position=2, required=True),
    ), aliases=("REN",), group="ifs"),
    Command("RMVLNK", "Delete a file on a volume.", (
        _p("OBJLNK", v.PATH, "The /QOPT/<volume>/... path of the file.", position=1, required=True),
    ), aliases=("DEL", "ERASE"), group="ifs"),
    Command("CRTDIR", "Create a directory on a volume.", (
        _p("DIR", v.PATH, "The /QOPT/<volume>/... path of the new directory.", position=1, required=True),
    ), aliases=("MKDIR", "MD"), group="ifs"),
    Command("RMVDIR", "Remove a directory on a volume.", (
        _p("DIR", v.PATH, "The /QOPT/<volume>/... path of the directory.", position=1, required=True),
        _p("SUBTREE", v.SPECIAL, "*NONE removes an empty directory, *ALL everything below it too.", default="*NONE", specials=("*NONE", "*ALL")),
    ), aliases=("RMDIR", "RD"), group="ifs"),
    Command("CHGATR", "Change the read-only or hidden attribute of a file.", (
        _p("OBJ", v.PATH, "The /QOPT/<volume>/... path of the file.", position=1, required=True),
        _p("ATR", v.SPECIAL, "The attribute to change.", position=2, required=True, specials=("*READONLY", "*HIDDEN")),
        _p("VALUE", v.SPECIAL, "Its new value.", position=3, required=True, specials=YES_NO),
    ), group="ifs"),
    # Backup commands (reference §5, §7)
    Command("CPYOPT", "Copy optical files: back up a primary volume, restore, or consolidate volumes.", (
        _p("FROMVOL", v.TEXT, "Source volume and its type.", position=1, required=True, elements=(
            _p("VOLUME", v.VOLUME, _VOL, required=True),
            _p("TYPE", v.SPECIAL, "Type of the source volume.", default="*PRIMARY", specials=("*PRIMARY", "*BACKUP")),
        )),
        _p("FROMPATH", v.PATH, "File or directory to copy; '/' is the whole volume.", position=2, required=True),
        _p("TOVOL", v.TEXT, "Target volume (or *FROMVOL) and its type.", position=3, required=True, elements=(
            _p("VOLUME", v.VOLUME, _VOL + " *FROMVOL is the source volume.", required=True, specials=("*FROMVOL",)),
            _p("TYPE", v.SPECIAL, "Type of the target volume.", default="*PRIMARY", specials=("*PRIMARY", "*BACKUP")),
        )),
        _p("TOPATH", v.PATH, "Where the copy lands, or *FROMPATH.", default="*FROMPATH", specials=("*FROMPATH",)),
        _p("SLTFILE", v.SPECIAL, "Which files: changed or missing, missing only, or all.", default="*CHANGED",
           specials=("*CHANGED", "*NEW", "*ALL")),
        _p("CPYSUBDIR", v.SPECIAL, "Copy subdirectories too.", default="*NO", specials=YES_NO),
        _p("CRTDIR", v.SPECIAL, "Create the target directory when it is missing.", default="*NO", specials=YES_NO),
        _p("ALWCPYOPP", v.SPECIAL, "Allow the opposite side as target (accepted, logged).", default="*NO", specials=YES_NO),
        _p("COPYTYPE", v.SPECIAL, "Copy method (accepted, logged).", default="*SYSTEM", specials=("*IOP", "*SYSTEM")),
        _p("FROMTIME", v.TEXT, "Only files created or changed at or after this date and time.", elements=(
            _p("DATE", v.DATE, "Starting date MM/DD/YYYY, MM/DD/YY, MMDDYYYY, MMDDYY or YYYY-MM-DD, or *BEGIN.", default="*BEGIN", specials=("*BEGIN",)),
            _p("TIME", v.TIME, "Starting time HH:MM:SS or HHMMSS, or *AVAIL.", default="*AVAIL", specials=("*AVAIL",)),
        )),
    )),
    Command("CVTOPTBKU", "Convert a *BACKUP volume into a *PRIMARY volume (one way).", (
        _p("BKUVOL", v.VOLUME, "The backup volume.", position=1, required=True),
        _p("PRIVOL", v.VOLUME, "New identifier, or *PRVPRIVOL for the recorded primary's.", position=2,
           default="*PRVPRIVOL", specials=("*PRVPRIVOL",)),
    )),
    # Integrity commands (reference §10.6, §10.7)
    Command("CHKOPTVOL", "Check that every directory and file version of a volume reads back intact.", (
        _p("VOL", v.GENERIC, "Volume identifier, generic name (ABC*) or *ALL; --json prints a list for a generic "
           "name or *ALL.", position=1, required=True, specials=("*ALL",)),
        _p("OUTPUT", v.SPECIAL, "List damaged files (*ERROR), nothing (*NONE) or every file (*PRINT).",
           position=2, default="*ERROR", specials=("*ERROR", "*NONE", "*PRINT")),
        _p("DEV", v.NAME, "Device name, or *ALL" + _IGNORED, position=3, default="*ALL", specials=("*ALL",)),
    )),
    Command("DUPOPT", "Duplicate a volume: identical except its identifier and creation time.", (
        _p("FROMVOL", v.VOLUME, "The volume to duplicate.", position=1, required=True),
        _p("TOVOL", v.VOLUME, "The target volume (replaced), or a new identifier.", position=2, required=True),
        _p("NEWVOL", v.VOLUME, "Identifier of the duplicate, *TOVOL or *FROMVOL.", position=3, default="*TOVOL",
           specials=("*TOVOL", "*FROMVOL")),
        _p("CLEAR", v.SPECIAL, "Allow overwriting a target that holds files.", default="*NO", specials=YES_NO),
        _p("ALWMEDERR", v.SPECIAL, "*NONE stops at a damaged file; *FILE leaves damaged files out.",
           default="*NONE", specials=("*NONE", "*FILE")),
        _p("FROMDEV", v.NAME, "Device of the source" + _IGNORED),
        _p("TODEV", v.NAME, "Device of the target" + _IGNORED),
        _p("OUTPUT", v.SPECIAL, "List files left out for media errors (*ERROR) or not (*NONE); accepted for IBM's "
           "scripts: optvol always lists them.", specials=("*ERROR", "*NONE")),
        _p("FROMENDOPT", v.SPECIAL, "What the source device does with the medium afterwards" + _IGNORED,
           specials=END_OPTIONS),
        _p("TOENDOPT", v.SPECIAL, "What the target device does with the medium afterwards" + _IGNORED,
           specials=END_OPTIONS),
    )),
    Command("CP", "Copy files between /QOPT/<volume>/... paths and host paths.", (
        _p("SOURCE", v.PATH, "Files (or with -r directories) to copy.", position=1, required=True, multiple=True),
        _p("TARGET", v.PATH, "Target file or directory.", position=2, required=True),
        _p("RECURSIVE", v.FLAG, "Copy directory trees.", short="-r"),
        _p("REPLACE", v.SPECIAL, "Replace existing target files.", default="*YES", specials=YES_NO),
    ), cl=False, group="files"),
    Command("MV", "Move or rename files and directories.", (
        _p("SOURCE", v.PATH, "What to move.", position=1, required=True, multiple=True),
        _p("TARGET", v.PATH, "New path or target directory.", position=2, required=True),
    ), cl=False, group="files"),
    Command("RM", "Delete files (with -r, directory trees) on a volume.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... paths.", position=1, required=True, multiple=True),
        _p("RECURSIVE", v.FLAG, "Delete directory trees.", short="-r"),
    ), cl=False, group="files"),
    Command("MKDIR", "Create directories on a volume.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... paths.", position=1, required=True, multiple=True),
        _p("PARENTS", v.FLAG, "Create missing parents too; no error if it exists.", short="-p"),
    ), cl=False, group="files"),
    Command("RMDIR", "Remove empty directories on a volume.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... paths.", position=1, required=True, multiple=True),
    ), cl=False, group="files"),
    Command("LS", "List a volume directory.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... path.", position=1, required=True),
        _p("LONG", v.FLAG, "Show size, modified time and flags.", short="-l"),
    ), cl=False, group="files"),
    Command("CAT", "Write files of a volume to standard output.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... paths.", position=1, required=True, multiple=True),
    ), cl=False, group="files"),
    Command("CHATTR", "Change the read-only and hidden flags of a file.", (
        _p("PATH", v.PATH, "/QOPT/<volume>/... path.", position=1, required=True),
        _p("READONLY", v.SPECIAL, "Read-only flag.", specials=YES_NO),
        _p("HIDDEN", v.SPECIAL, "Hidden flag.", specials=YES_NO),
    ), cl=False, group="files"),
    # Interchange commands
    Command("EXPORT-ISO", "Export a volume as an ISO 9660 image (level 3, Joliet, Rock Ridge; UDF bridge with --udf).", (
        _p("VOL", v.VOLUME, _VOL, position=1, required=True),
        _p("FILE", v.PATH, "Host path of the image to write (replaced only when complete).", position=2, required=True),
        _p("UDF", v.FLAG, "Add a UDF bridge file system.", short="-u"),
    ), cl=False, group="interchange"),
    Command("IMPORT-ISO", "Add an ISO 9660 / UDF image as a read-only *CD-ROM or *DVD-ROM volume.", (
        _p("FILE", v.PATH, "Host path of the image.", position=1, required=True),
        _p("VOL", v.VOLUME, "Volume identifier of the new volume (default: the image's volume identifier)."),
        _p("INTO", v.PATH, "VOL:/PATH: copy the image's tree into this directory of an existing volume instead."),
    ), cl=False, group="interchange"),
    Command("RECOVER", "Rebuild a volume's index partition from its data partition alone.", (
        _p("VOL", v.VOLUME, _VOL, position=1, required=True),
    ), cl=False, group="tools"),
    Command("DEMO", "A narrated tour of optvol on a scratch library.", (), cl=False, group="tools"),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
BY_SHELL: dict[str, Command] = {c.shell_name: c for c in COMMANDS}


def cl_command(name: str) -> Command | None:
    """The command ``optvol cl`` runs for ``name`` (its CL name or an IBM alias), or None."""
    upper = name.upper()
    for found in COMMANDS:
        if found.cl and (found.name == upper or upper in found.aliases):
            return found
    return None


def command(name: str) -> Command:
    """The command called ``name`` (CL or shell spelling)."""
    found = BY_NAME.get(name.upper()) or BY_SHELL.get(name.lower())
    if found is None:
        raise errors.error("OPV0005", value=name, keyword="command", reason="not an optvol command")
    return found
