"""Handlers of the volume commands: INZOPT, CHGOPTVOL, DSPOPT, WRKOPTVOL, WRKOPTDIR, WRKOPTF."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

from optvol import change_volume, display, errors, initialize
from optvol.cli import render
from optvol.cli.context import Context
from optvol.model import MediaFormat, MediaType, VolumeType, local_moment


def _unless(value: object, special: str) -> object:
    return None if value == special else value


def inzopt(ctx: Context, values: dict) -> int:
    library = ctx.library()
    result = initialize.inzopt(
        library,
        vol=values["VOL"],
        newvol=_unless(values["NEWVOL"], "*VOL"),
        threshold=_unless(values["THRESHOLD"], "*CALC"),
        type=VolumeType(values["TYPE"]),
        text=_unless(values["TEXT"], "*BLANK") or "",
        check=values["CHECK"] == "*YES",
        clear=values["CLEAR"] == "*YES",
        medfmt=None if values["MEDFMT"] == "*MEDTYPE" else MediaFormat(values["MEDFMT"]),
        medtype=None if values["MEDTYPE"] == "*SAME" else MediaType(values["MEDTYPE"]),
        capacity=_unless(values["CAPACITY"], "*MEDTYPE"),
        blksize=_unless(values["BLKSIZE"], "*MEDTYPE"),
        now=ctx.now(),
    )
    info = result.volume
    if ctx.json:
        ctx.print_json({"volume": info.as_json(), "created": result.created,
                        "erased_files": result.erased_files, "erased_bytes": result.erased_bytes})
        return 0
    if result.created:
        ctx.print(f"Volume {info.volume} created in library {render.shown(str(library.root))}.")
    else:
        previous = f"{result.previous_id}, now {info.volume}," if result.previous_id else info.volume
        ctx.print(f"Volume {previous} initialized again: everything on it was erased "
                  f"({result.erased_files} file(s), {result.erased_bytes:,} bytes used).")
    ctx.print(f"{info.type} {info.media_type} {info.media_format}, {info.sector_size}-byte sectors, "
              f"capacity {info.capacity:,} bytes, threshold {info.threshold} %.")
    return 0


def chgoptvol(ctx: Context, values: dict) -> int:
    library = ctx.library()
    text = values["TEXT"]
    info = change_volume.chgoptvol(
        library,
        vol=values["VOL"],
        threshold=_unless(values["THRESHOLD"], "*SAME"),
        text=None if text == "*SAME" else ("" if text == "*BLANK" else text),
        autl=_unless(values["AUTL"], "*SAME"),
    )
    if ctx.json:
        ctx.print_json(info.as_json())
    else:
        ctx.print(f"Volume {info.volume} changed: threshold {info.threshold} %, text {render.shown(info.text) if info.text else '*BLANK'}, "
                  f"authorization list {library.autl(info.volume) or '*NONE'}.")
    return 0


def dspopt(ctx: Context, values: dict) -> int:
    library = ctx.library()
    data, vol, path = values["DATA"], values["VOL"], values["PATH"]
    if data == "*VOLATR":
        generic, unreadable = vol == "*ALL" or vol.endswith("*"), []
        rows = list(display.volumes(library, vol, unreadable=unreadable)) if generic else [
            (display.volume_attributes(library, vol), library.autl(vol))]
        if generic and not rows and not unreadable and vol != "*ALL":  # as WRKOPTVOL, CHKOPTVOL
            raise errors.error("OPV0002", volume=vol, library=library.root)
        if ctx.json:
            ctx.print_json(rows[0][0].as_json() if not generic else [info.as_json() for info, _ in rows])
            return _unreadable(ctx, unreadable)
        ctx.print(f"Library {render.shown(str(library.root))}")
        for info, autl in rows:
            ctx.print()
            for line in render.volume_attributes(info, autl):
                ctx.print(line)
        return _unreadable(ctx, unreadable)
    if vol == "*ALL" or vol.endswith("*"):
        raise errors.error("OPV0005", value=vol, keyword="VOL", reason=f"DATA({data}) needs one volume")
    if data == "*BKUHST":
        with library.open(vol) as volume:
            requests = volume.requests()
        if ctx.json:
            ctx.print_json(requests)
            return 0
        ctx.print(f"Library {render.shown(str(library.root))} - CPYOPT requests logged on {vol}")
        for entry in requests:
            p = entry["parameters"]
            ctx.print(f"{render.when_text(entry['time'])}  {entry['outcome']:<9} copied {entry['copied']}, not selected "
                      f"{entry['not_selected']}, failed {entry['failed']}, {entry['directories']} dir(s): "
                      f"FROMVOL({' '.join(p['FROMVOL'])}) FROMPATH({render.cl_string(p['FROMPATH'])}) SLTFILE({p['SLTFILE']}) "
                      f"CPYSUBDIR({p['CPYSUBDIR']}) FROMTIME({render.when_text(p['FROMTIME'])})")
        return 0
    if data == "*DIRATR":
        _list(ctx, library, f"Directories of {vol}", render.DIRS,
              display.directory_attributes(library, vol, path))
    else:
        _list(ctx, library, f"Files of {vol}", render.FILES,
              display.file_attributes(library, vol, path))
    return 0


def _list(ctx: Context, library, title: str, table: render.Table, items) -> None:
    """Stream a listing as JSON or as a table, one row at a time (a table reads its first
    rows ahead, to make its time columns as wide as their widest cell: render.sized)."""
    if ctx.json:
        ctx.print_json_list(item.as_json() for item in items)
        return
    width, rows = render.sized(items, table.times)  # raises (not found...) before anything is printed
    ctx.print(f"Library {render.shown(str(library.root))} - {title}")
    ctx.print(table.header(width))
    for item in rows:
        ctx.print(table.line(item, width))


def wrkoptvol(ctx: Context, values: dict) -> int:
    library, unreadable, vol = ctx.library(), [], values["VOL"]
    rows = iter(display.volumes(library, vol, unreadable=unreadable))
    first = next(rows, None)
    # A volume or generic name that matches none is not found, as in DSPOPT; the whole
    # library (*ALL) may be empty.
    if first is None and not unreadable and vol != "*ALL":
        raise errors.error("OPV0002", volume=vol, library=library.root)
    rows = itertools.chain([first] if first else [], rows)
    if ctx.json:
        ctx.print_json_list(info.as_json() for info, _ in rows)
        return _unreadable(ctx, unreadable)
    ctx.print(f"Library {render.shown(str(library.root))} - Work with Optical Volumes")
    ctx.print(render.VOLUME_HEADER)
    for info, _ in rows:
        ctx.print(render.volume_line(info))
    return _unreadable(ctx, unreadable)


def _unreadable(ctx: Context, unreadable: list[errors.OptvolError]) -> int:
    """The volumes a listing left out, each with its error on stderr; the exit code of the worst."""
    for exc in unreadable:
        ctx.error(exc)
    return max((exc.exit_code for exc in unreadable), default=0)


def wrkoptdir(ctx: Context, values: dict) -> int:
    library = ctx.library()
    levels = _unless(values["SLTLVL"], "*ALL")
    start = values["STRDATE"]
    since = None if start == "*AVAIL" else local_moment(datetime.combine(start, time(0)))
    items = display.work_directories(library, vol=values["VOL"], dir=values["DIR"], levels=levels,
                                     by_date=values["SORT"] == "*DATE", since=since)
    _list(ctx, library, f"Work with Optical Directories - {values['VOL']}", render.DIRS, items)
    return 0


_SLTFILE_DEFAULT, _SLTDATE_DEFAULT = ("*ALL", None), ("*CREATED", ("*AVAIL", "*BEGIN"), ("*AVAIL", "*END"))


def _date_range(start: tuple, end: tuple) -> tuple[datetime | None, datetime | None]:
    """SLTDATE's (time date) pairs, local time, as the first moment selected and the first
    one past them: *AVAIL is the start of the starting day and the end of the ending day
    (its last moment before the next day's first), an ending time counts its whole second
    (of the later pass, in an hour the clocks go back over), and a time beside *BEGIN or
    *END counts for nothing, as FROMTIME's beside *BEGIN. An end before the start, as
    typed, is OPV0005; a range the clocks skip is empty."""
    (start_time, start_date), (end_time, end_date) = start, end
    first = None if start_date == "*BEGIN" else datetime.combine(start_date, time(0) if start_time == "*AVAIL" else start_time)
    last = None if end_date == "*END" else datetime.combine(end_date, time(23, 59, 59) if end_time == "*AVAIL" else end_time)
    if first is not None and last is not None and last + timedelta(seconds=1) <= first:
        raise errors.error("OPV0005", value=f"({start_time} {start_date}) ({end_time} {end_date})", keyword="SLTDATE",
                           reason="the ending date and time is before the starting date and time")
    before = None
    if end_time == "*AVAIL" and last is not None:
        before = local_moment(datetime.combine(end_date + timedelta(days=1), time(0)))
    elif last is not None:
        moment = local_moment(last, latest=True)
        exists = moment.replace(tzinfo=None) == last  # else the clocks skip it: up to their jump
        before = moment + timedelta(seconds=1) if exists else local_moment(last + timedelta(seconds=1))
    return (None if first is None else local_moment(first)), before


def wrkoptf(ctx: Context, values: dict) -> int:
    library = ctx.library()
    selection = None
    if values["FILE"] == "*SELECT":
        (from_file, to_file), (kind, start, end) = values["SLTFILE"], values["SLTDATE"]
        since, before = _date_range(start, end)
        selection = display.file_selection(from_file, to_file, kind=display.DateKind(kind), start=since, before=before)
    elif values["SLTFILE"] != _SLTFILE_DEFAULT or values["SLTDATE"] != _SLTDATE_DEFAULT:
        keyword = "SLTFILE" if values["SLTFILE"] != _SLTFILE_DEFAULT else "SLTDATE"
        raise errors.error("OPV0005", value=values["FILE"], keyword="FILE",
                           reason=f"{keyword} applies only with FILE(*SELECT), as on IBM i")

    def ignored() -> None:
        ctx.note(f"SLTFILE and SLTDATE are ignored on backup volume {values['VOL']}, as on IBM i: every file is listed.")

    items = display.work_files(library, vol=values["VOL"], dir=values["DIR"], file=values["FILE"], selection=selection,
                               ignored=ignored)
    _list(ctx, library, f"Work with Optical Files - {values['VOL']}", render.FILES, items)
    return 0
