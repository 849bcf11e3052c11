"""The file commands on ``/QOPT/<volume>/...`` paths: cp, mv, rm, mkdir, rmdir, chattr (ls and cat: reading.py).

Any path outside ``/QOPT`` is a host path, so ``cp ./report.pdf /QOPT/PVOL1/DIR1/`` copies
a host file onto a volume and ``cp -r /QOPT/PVOL1/DIR1 ./out`` copies back. Everything a
user program could not do on a volume (writing a *BACKUP volume, read-only media) is
refused here too, because these commands act through the volume's user-program API.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from optvol import errors, host_names, host_sync, model, move_source
from optvol.library import Library
from optvol.model import FileInfo
from optvol.path_spool import PathSpool
from optvol.volume import Volume
from optvol.volume_rows import longest_below, longest_in_volume

BATCH_FILES = 1000
BATCH_BYTES = 64 << 20


@dataclass(frozen=True)
class Location:
    """A path on a volume (``volume`` set) or on the host (``volume`` None)."""

    volume: str | None
    path: str

    @classmethod
    def of(cls, text: str) -> Location:
        found = model.parse_qopt(text)
        return cls(found[0], found[1]) if found else cls(None, text)

    @property
    def identity(self) -> tuple[str | None, str]:
        """What two spellings of one entry share: on a volume its key (no case, no trailing
        '/'), on the host its name in its directory's real path (a host's names differ in case)."""
        if self.volume is None:  # (its directory's real path, links resolved before "..": a link to a file is another name)
            path = self.path.rstrip("/") or "/"
            directory, name = os.path.split(path)
            return None, os.path.realpath(path) if name in ("", ".", "..") else os.path.join(
                os.path.realpath(directory or "."), name)
        return self.volume, model.name_key(self.path).rstrip("/")

    def child(self, name: str) -> Location:
        if self.volume is None:
            return Location(None, os.path.join(self.path, name))
        return Location(self.volume, self.path.rstrip("/") + "/" + name)

    def __str__(self) -> str:
        return f"/QOPT/{self.volume}{self.path}" if self.volume else self.path


def _basename(location: Location) -> str:
    """The name a copy into a directory gives ``location``: a volume's root is called by its
    volume ID, as /QOPT lists it (hunt30a F3: ``cp -r /QOPT/PVOL1 home/`` spilled the volume's
    entries into home/, replacing its files, where cp -r of any directory makes home/NAME)."""
    if location.volume is None:
        return os.path.basename(location.path.rstrip("/"))
    return location.path.rstrip("/").rsplit("/", 1)[-1] or location.volume


class _Volumes:
    """Volumes opened once per command, closed together."""

    def __init__(self, library: Library, stack: ExitStack):
        self.library, self.stack, self.open = library, stack, {}
        self.host_writes = host_names.HostWrites()

    def __getitem__(self, volume_id: str) -> Volume:
        if volume_id not in self.open:
            self.open[volume_id] = self.stack.enter_context(self.library.open(volume_id))
        return self.open[volume_id]


@contextmanager
def _session(library: Library) -> Iterator[_Volumes]:
    with ExitStack() as stack:
        yield _Volumes(library, stack)


def _is_dir(volumes: _Volumes, where: Location) -> bool:
    if where.volume is None:
        return os.path.isdir(where.path)
    return volumes[where.volume].is_dir(where.path)


def _exists(volumes: _Volumes, where: Location) -> bool:
    if where.volume is None:
        return os.path.lexists(where.path)
    return volumes[where.volume].exists(where.path)


# --------------------------------------------------------------------- cp / mv


def copy(library: Library, sources: list[str], target: str, *, recursive: bool = False,
         replace: bool = True) -> Iterator[str]:
    """cp: copy files (and with ``recursive`` directory trees); gives each path written once it
    is kept (on a volume, durable: a tree commits in batches; on the host, renamed into place
    whole, and on the disk once the host writes it back, as ``cp`` leaves it), so a million
    files are reported as they go, and what an error cuts short was reported only as far as
    it was kept."""
    with _session(library) as volumes:
        plan = _plan(volumes, [Location.of(s) for s in sources], Location.of(target), recursive=recursive,
                     operation="reading a file")
        _refuse_two_of_a_name(volumes, plan)
        for source, destination in plan:  # every host tree's names before anything is copied
            if source.volume is None and destination.volume is not None and _is_dir(volumes, source):
                _check_host_names(volumes, source, destination)
        for source, destination in plan:
            yield from _copy_one(volumes, source, destination, replace=replace)


MOVING = "moving a file"


def _refuse_two_of_a_name(volumes: _Volumes, plan: list[tuple[Location, Location]]) -> None:
    """Two sources of one name in the target: the second would replace the first. Refused
    before anything is copied: on the host (names the host takes for one too,
    ``host_names.refuse_second_of_a_name``: OPV0302), on a volume (OPV0008). Trees as well:
    two directories of one name would be merged, and a file both hold copied over itself."""
    on_host: dict[str, dict[str, list[str]]] = {}
    on_volumes: set[tuple[str, str]] = set()
    characters = host_names.HostCharacters()
    for _, destination in plan:
        if destination.volume is None:
            characters.refuse(os.path.abspath(destination.path))
            host_names.refuse_second_of_a_name(on_host, os.path.abspath(destination.path))
        else:
            key = (destination.volume, model.name_key(destination.path))
            if key in on_volumes:
                raise errors.error("OPV0008", reason=f"two sources have the name {destination} in the target;"
                                   " nothing was copied")
            on_volumes.add(key)


def _plan(volumes: _Volumes, sources: list[Location], target: Location, *, recursive: bool,
          operation: str) -> list[tuple[Location, Location]]:
    """Check every source and work out each destination before anything is written (a
    source on a *BACKUP volume is refused here, with ``operation``: not after a tree's
    directories were made on the host)."""
    if all(s.volume is None for s in sources) and target.volume is None:
        raise errors.error("OPV0302", path=target.path, reason="neither source nor target is a /QOPT path")
    if target.volume is None:
        volumes.library.check_host_target(target.path)
    renaming = (operation == MOVING and len(sources) == 1 and sources[0].volume is not None
                and sources[0].volume == target.volume and not target.path.endswith("/")
                and model.name_key(sources[0].path).rstrip("/") == model.name_key(target.path))
    # mv of a directory onto another case of its own name renames it, as mv of a file does
    into = not renaming and (_is_dir(volumes, target) or target.path.endswith("/") or len(sources) > 1)
    if into and not _is_dir(volumes, target):
        _missing(target, directory=True)
    plan, named = [], set()
    for source in sources:
        if source.identity in named:
            continue  # named twice (on a volume, in any case): moved or copied once
        named.add(source.identity)
        if not _exists(volumes, source):
            _missing(source, directory=False)
        if source.volume is not None:
            volumes[source.volume].check_user_access(operation)
            if operation == MOVING and source.path.strip("/") == "":  # a copy then an rm -r would empty it
                raise errors.error("CPF1F0A", path="/", volume=source.volume, reason="it is the root directory")
        if _is_dir(volumes, source) and not recursive:
            if source.volume is not None:  # a volume's path is no host path (OPV0302 said "Host path")
                raise errors.error("OPV0108", path=source.path, volume=source.volume,
                                   operation="cp without -r (CPY without SUBTREE(*ALL))")
            raise errors.error("OPV0302", path=str(source), reason="it is a directory; copy a tree with cp -r or CPY SUBTREE(*ALL)")
        destination = target.child(_basename(source)) if into else target
        moving = operation == MOVING
        if source.volume and source.volume == destination.volume and _inside(destination.path, source.path):
            # A move onto its own name, or another case of it, is a rename: the volume says (CPF1F23).
            if not (moving and model.name_key(destination.path).rstrip("/") == model.name_key(source.path).rstrip("/")):
                raise errors.error("OPV0110", operation="move" if moving else "copy", path=str(source))
        if recursive and source.volume is not None and _is_dir(volumes, source):
            if destination.volume is not None:
                _check_tree_fits(volumes, source, destination)
            else:
                _check_names_for_host(volumes, source, destination)
        plan.append((source, destination))
    return plan


def _check_tree_fits(volumes: _Volumes, source: Location, destination: Location) -> None:
    """Every path of a volume's tree fits reference §3.1 where the copy puts it on the target
    volume (CPF1F48 otherwise), before anything is copied: the lengths by one query, and
    between media formats every name by the target's rules (the copy stopped at the first
    path too long, or name refused, with hundreds of files already on the target)."""
    volume, target = volumes[source.volume], volumes[destination.volume]
    top = volume.dir_row(source.path)
    conn = volume.image.conn
    longest_dir, longest_file = longest_in_volume(conn) if top.path == "/" else longest_below(conn, top)
    grows = len(destination.path.rstrip("/")) - len(top.path.rstrip("/"))
    model.check_lengths(destination.path, volume=target.id, directories=longest_dir + grows,
                        total=max(longest_dir, longest_file) + grows, below=True)
    media_format = model.MediaFormat(target.label()["media_format"])
    if media_format != model.MediaFormat(volume.label()["media_format"]):  # names the target's format refuses
        for _, item_destination, is_dir in _tree(volumes, source, destination):
            model.split_path(item_destination.path, volume=target.id, media_format=media_format, is_dir=is_dir)


def _check_names_for_host(volumes: _Volumes, source: Location, destination: Location) -> None:
    """Every name of a volume's tree can name a host file where the copy puts it (its bytes
    in the host's encoding within NAME_MAX, or made by the host when tried; the whole path
    within PATH_MAX), before anything is copied: the copy stopped at the first name the host
    could not hold (255 characters of é take 510 bytes), the rest neither copied nor named."""
    probe = os.path.abspath(destination.path)
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        name_max, path_max = os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    # A host that folds names: two names of one directory that it takes for one (σ and ς on
    # exFAT) would be copied into one, the second over the first, whatever is there before.
    folds: dict[str, dict[str, str]] | None = {} if host_names.folds_names(probe) else None  # directory -> fold -> name
    characters = host_names.HostCharacters()
    for _, item_destination, is_dir in _tree(volumes, source, destination):
        path = os.path.abspath(item_destination.path)
        host_names.check_host_name(path)
        if is_dir:
            host_names.refuse_a_link(item_destination.path, before=True)  # (a root's: the target itself, "out/")
        characters.refuse(path)
        name = os.path.basename(path)
        if folds is not None:
            host_names.refuse_folded_pair(folds, path, probe)
        name_bytes, path_bytes = len(os.fsencode(name)), len(os.fsencode(path))
        if name_bytes > name_max and host_names.host_takes(probe, name):  # exFAT counts its 255 in characters
            name_bytes = 0
        if name_bytes > name_max or path_bytes >= path_max:
            what = (f"its name is too long for the host ({name_bytes} bytes; it allows {name_max})" if name_bytes > name_max
                    else f"its path is too long for the host ({path_bytes} bytes; it allows {path_max - 1})")
            raise errors.error("OPV0302", path=item_destination.path, reason=f"{what}; nothing was copied")


def _check_host_names(volumes: _Volumes, source: Location, destination: Location) -> None:
    """Every name of a host tree can name an entry on the target volume: one that cannot (not
    UTF-8, a character or a length the volume refuses) is refused before anything is copied,
    naming the host file, not when a batch of the copy reaches it."""
    label = volumes[destination.volume].label()
    media_format = model.MediaFormat(label["media_format"])
    # The children's names of each directory on the current path, by lookup key: two names
    # the volume takes for one (a.txt and A.txt, D and d) were both copied, the second over
    # the first (hunt28d F1). Pre-order: a directory's children follow it.
    open_dirs: list[tuple[str, dict[str, str]]] = []
    for item_source, item_destination, is_dir in _tree(volumes, source, destination):
        try:
            model.split_path(item_destination.path, volume=label["volume"], media_format=media_format, is_dir=is_dir)
        except errors.OptvolError as exc:
            raise errors.error("OPV0302", path=item_source.path, reason=f"it cannot be named so on volume"
                               f" {label['volume']}: {errors.cause(exc)}; nothing was copied") from None
        parent, _, name = item_destination.path.rstrip("/").rpartition("/")
        while open_dirs and open_dirs[-1][0] != parent:
            open_dirs.pop()
        other = open_dirs[-1][1].setdefault(model.name_key(name), name) if open_dirs else name
        if other != name:
            raise errors.error("OPV0302", path=item_source.path, reason=f"volume {label['volume']} takes it and"
                               f" {other!r} of the same directory for one name (names are compared without case);"
                               " nothing was copied")
        if is_dir:
            open_dirs.append((item_destination.path.rstrip("/"), {}))
        else:  # a link to a directory or to nothing, a FIFO: refused once the copy reached it (hunt28d F4)
            host_names.refuse_no_file(item_source.path)


def _inside(path: str, top: str) -> bool:
    return (model.name_key(path).rstrip("/") + "/").startswith(model.name_key(top).rstrip("/") + "/")


def _missing(where: Location, *, directory: bool) -> None:
    if where.volume is None:
        raise errors.error("OPV0301", path=where.path)
    if not directory:  # (a file named with a final '/' is quoted so: no file has that path, CPF1F22)
        raise errors.error("CPF1F22", path=where.path, volume=where.volume)
    path = where.path.rstrip("/") or "/"  # as the volume names a directory, without the "/" a target ends in
    raise errors.error("CPF1F02", path=path, volume=where.volume)


def _copy_one(volumes: _Volumes, source: Location, destination: Location, *, replace: bool,
              moving: bool = False) -> Iterator[str]:
    """Copy a file or a whole tree, giving each file's destination once it is kept (``copy``); a tree
    onto a volume goes in batches of many files. ``moving`` (mv, whose sources go next): a
    host copy is fsynced; a file already on the target volume with the same bytes, read back
    intact, is taken as copied (an interrupted mv copied it: ``_same_file``). A host copy is
    given once on the disk with its name (``host_sync``): a power loss after "copied" loses
    nothing (hunt29e F2); mv's file by file, cp's in groups."""
    if destination.volume is None:
        groups = None if moving else host_sync.SyncGroups()
        for item_source, item_destination, is_dir in _tree(volumes, source, destination):
            if is_dir:
                _make_dir(volumes, item_destination, durable=moving)
                if groups is not None:
                    groups.made(item_destination.path)
            elif groups is None:
                _copy_file(volumes, item_source, item_destination, replace=replace, durable=True)
                yield str(item_destination)  # renamed into place, whole, file and name on the disk
            else:
                _copy_file(volumes, item_source, item_destination, replace=replace)
                yield from _synced(groups.written, item_destination.path)
        if groups is not None:
            yield from _synced(groups.flush)
        return
    batches = _Batches(volumes[destination.volume])
    with batches:
        for item_source, item_destination, is_dir in _tree(volumes, source, destination):
            yield from batches.next(0 if is_dir else _size(volumes, item_source))
            if is_dir:
                _make_dir(volumes, item_destination)
            else:
                if not (moving and not replace and _same_file(volumes, item_source, item_destination)):
                    _copy_file(volumes, item_source, item_destination, replace=replace)
                batches.written.append(str(item_destination))
    yield from batches.written  # the last batch committed


def _tree(volumes: _Volumes, source: Location, destination: Location) -> Iterator[tuple[Location, Location, bool]]:
    """(source, destination, is directory) for a file, or for a tree in pre-order."""
    if not _is_dir(volumes, source):
        yield source, destination, False
        return
    yield source, destination, True
    if source.volume is None:
        # Names only, sorted (a tuple per entry would double what a million-file directory holds).
        subdirs, files = [], []
        with os.scandir(source.path) as entries:
            for entry in entries:
                (subdirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
        subdirs.sort()
        files.sort()
        for name in subdirs:
            yield from _tree(volumes, source.child(name), destination.child(name))
        for name in files:
            yield source.child(name), destination.child(name), False
        return
    # A volume's directory: no query stays open while the copy writes (iter_dir), perhaps
    # onto this same volume.
    for entry in volumes[source.volume].iter_dir(source.path):
        name = entry.path.rsplit("/", 1)[-1]
        if entry.is_dir:
            yield from _tree(volumes, source.child(name), destination.child(name))
        else:
            yield source.child(name), destination.child(name), False


def _make_dir(volumes: _Volumes, where: Location, *, durable: bool = False) -> None:
    if where.volume is None:
        host_names.check_host_name(where.path)
        # A tree's own directories too: a symbolic link below the target may lead into the library,
        # or anywhere outside the target (made since the check before the copy).
        host_names.refuse_a_link(where.path)
        volumes.library.check_host_target(where.path)
        try:
            volumes.host_writes.make_dir(where.path)
            if durable:  # its name in its parent on the disk too (mv)
                host_sync.sync_names(os.path.dirname(os.path.abspath(where.path)))
        except OSError as exc:  # a name too long for the host, a read-only disk
            raise errors.error("OPV0302", path=where.path, reason=exc.strerror or str(exc)) from None
    else:
        volumes[where.volume].mkdir(where.path, exist_ok=True)


def _same_file(volumes: _Volumes, source: Location, destination: Location) -> bool:
    """Both on volumes, and the destination a file an mv could have written there (a volume
    user programs may write: never a *BACKUP) with the source's size and SHA-256, read back
    intact: only then may the source go without another copy."""
    if source.volume is None or destination.volume is None or not _exists(volumes, destination):
        return False
    target = volumes[destination.volume]
    try:
        target.check_user_write(MOVING)
    except errors.OptvolError:
        return False
    found, wanted = target.stat(destination.path), volumes[source.volume].stat(source.path)
    if found.is_dir or wanted.is_dir or (found.size, found.sha256) != (wanted.size, wanted.sha256):
        return False
    try:
        target.verify(target.file_row(destination.path)[1], destination.path)
    except errors.DamagedError:
        return False
    return True


def _size(volumes: _Volumes, where: Location) -> int:
    if where.volume is None:
        try:
            return os.stat(where.path).st_size
        except FileNotFoundError:  # gone, or a symbolic link to nothing
            raise errors.error("OPV0301", path=where.path) from None
        except OSError as exc:
            raise errors.error("OPV0302", path=where.path, reason=exc.strerror or str(exc)) from None
    return volumes[where.volume].stat(where.path).size


class _Batches:
    """Commit a long tree copy every BATCH_FILES files or BATCH_BYTES bytes; ``written`` holds
    the files of the open batch, given out by ``next`` when it commits."""

    def __init__(self, volume: Volume):
        self.volume, self.files, self.bytes, self.current = volume, 0, 0, None
        self.written: list[str] = []

    def __enter__(self) -> _Batches:
        self.current = self.volume.batch()
        self.current.__enter__()
        return self

    def next(self, size: int) -> Iterator[str]:
        """Count the next item; when the batch is full, commit it and give out its files."""
        self.files, self.bytes = self.files + 1, self.bytes + size
        if self.files >= BATCH_FILES or self.bytes >= BATCH_BYTES:
            self.current.__exit__(None, None, None)
            committed, self.written = self.written, []
            self.files, self.bytes = 1, size
            self.current = self.volume.batch()
            self.current.__enter__()
            yield from committed

    def __exit__(self, *exc) -> None:
        self.current.__exit__(*exc)


def _copy_file(volumes: _Volumes, source: Location, destination: Location, *, replace: bool,
               durable: bool = False) -> None:
    if source.volume is None:
        _host_to_volume(volumes[destination.volume], source.path, destination.path, replace=replace)
        return
    volume = volumes[source.volume]
    volume.check_user_access("reading a file")
    _, row = volume.file_row(source.path)
    chunks = volume.verified_chunks(row, source.path)
    if destination.volume is not None:
        volumes[destination.volume].write_chunks(destination.path, chunks, size=row.size, replace=replace)
    else:
        _to_host(chunks, destination.path, modified=row.modified, replace=replace, durable=durable,
                 made=volumes.host_writes)


def _host_to_volume(volume: Volume, host_path: str, path: str, *, replace: bool) -> None:
    try:
        # O_NONBLOCK: a FIFO opens at once (to be refused below) instead of waiting for a writer.
        fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise errors.error("OPV0301", path=host_path) from None
    except OSError as exc:
        raise errors.error("OPV0302", path=host_path, reason=exc.strerror) from None
    try:
        info = os.fstat(fd)
        if not stat_mod.S_ISREG(info.st_mode):
            raise errors.error("OPV0302", path=host_path, reason="it is not a regular file")
        volume.write_chunks(path, _read_host(fd, info.st_size, host_path), size=info.st_size, replace=replace)
    finally:
        os.close(fd)


def _read_host(fd: int, size: int, name: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The ``size`` bytes of host file ``name``; OPV0302 if it cannot be read or does not
    hold exactly that many (nothing of it is written then)."""
    remaining = size
    try:
        while remaining:
            data = os.read(fd, min(chunk, remaining))
            if not data:
                raise errors.error("OPV0302", path=name, reason=f"it ended after {size - remaining} of its {size}"
                                                                " bytes: it shrank while it was copied")
            remaining -= len(data)
            yield data
        grew = os.read(fd, 1)  # more than its size: it grew, or a /proc file that says 0
    except OSError as exc:
        raise errors.error("OPV0302", path=name, reason=exc.strerror or str(exc)) from None
    if grew:
        raise errors.error("OPV0302", path=name, reason=f"it holds more than its size ({size} bytes) says: it grew"
                                                        " while it was copied, or it is not a plain file")


def _refuse_a_special_file(host_path: str) -> None:
    """OPV0302 for a target that is a device, a FIFO or a socket, or a link to one: the copy
    is renamed over its target, and replaced a device node with a file, said done
    (``cp /QOPT/V/f /dev/null`` as root made /dev/null a file for every process; hunt-contract
    F8). ``export-iso`` refuses them too. A link to a file, or to nothing, is replaced."""
    try:
        found = os.stat(host_path)  # (through a link: a link to a device is refused too)
    except OSError:  # none there, or a link to nothing: a new file
        return
    if not (stat_mod.S_ISREG(found.st_mode) or stat_mod.S_ISDIR(found.st_mode)):
        raise errors.error("OPV0302", path=host_path, reason="it is not a regular file (a device, a FIFO or a"
                           " socket), which a copy would replace")


def _to_host(chunks: Iterator[bytes], host_path: str, *, modified: int, replace: bool, durable: bool = False,
             made: host_names.HostWrites | None = None) -> None:
    """Write to a temporary file beside the target and rename it only once verified;
    ``durable`` (mv): on the disk, file and name, before this returns (an fsync reports a
    failed write, which ``sync`` would not). ``made``: what this command made on the host
    (``host_names.HostWrites``), which it never replaces."""
    host_names.check_host_name(host_path)
    if os.path.lexists(host_path) and not replace:
        raise errors.error("OPV0303", path=host_path)
    _refuse_a_special_file(host_path)
    if made is not None:
        made.check(host_path)
    directory = os.path.dirname(os.path.abspath(host_path))
    host_names.check_target_directory(directory)
    # Its directory was checked against the library as the command's target (_plan) or as
    # a directory of the tree (_make_dir); the rename replaces a link named host_path, not its target.
    try:  # the mode of the file it replaces, else made as any new file is (host_names.new_file_beside)
        fd, temporary = host_names.new_file_beside(host_path, host_names.mode_to_keep(host_path))
    except OSError as exc:  # a read-only or foreign directory
        raise errors.error("OPV0302", path=host_path, reason=exc.strerror or str(exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:  # raises CPF1F28 at the end if the data is damaged
                handle.write(chunk)
            handle.flush()
            os.utime(fd, ns=(modified * 1000, modified * 1000))  # exact: float seconds lose microseconds
            if durable:
                os.fsync(fd)
            host_names.put_in_place(fd, temporary, host_path)
    except BaseException as exc:
        host_names.discard(None, temporary)  # (the file is closed)
        if isinstance(exc, OSError):  # writing the host file: its disk is full, say
            raise errors.error("OPV0302", path=host_path, reason=exc.strerror or str(exc)) from None
        raise
    if made is not None:
        made.made(host_path)
    if durable:
        try:
            host_sync.sync_names(directory)
        except OSError as exc:
            raise errors.error("OPV0302", path=host_path, reason=exc.strerror or str(exc)) from None


def _synced(sync, *args: str) -> list[str]:
    """``sync(*args)`` of a ``host_sync.SyncGroups``: the files it gives back, or OPV0302."""
    try:
        return sync(*args)
    except OSError as exc:  # a write the disk refused, found by the sync
        raise errors.error("OPV0302", path=exc.filename or (args[0] if args else "."),
                           reason=exc.strerror or str(exc)) from None


def move(library: Library, sources: list[str], target: str, *, replace: bool = False) -> Iterator[str]:
    """mv: a rename within one volume; across volumes or the host, a copy then a delete.
    Gives each path moved as copy does. Like a rename, a move never replaces a file: an
    existing target file is refused (CPF1F24, or OPV0303 on the host) before anything is
    copied, and so is a file a tree would replace, when the copy reaches it (nothing of
    the source is deleted then), nor is what another process changed after the copy began, nor a
    directory it made or moved in there that the copy does not hold (CPF1F26)."""
    with _session(library) as volumes:
        plan = _plan(volumes, [Location.of(s) for s in sources], Location.of(target), recursive=True,
                     operation=MOVING)
        _refuse_two_of_a_name(volumes, plan)
        leaving: dict[str, list[str]] = {}  # volume -> the paths a copy takes off it
        for source, destination in plan:  # refuse before anything is copied
            if source.volume is None:
                raise errors.error("OPV0302", path=source.path,
                                   reason="mv moves only files on a volume; a host file goes onto one with cp")
            if source.volume != destination.volume:
                if destination.volume is not None:  # a *BACKUP or read-only target says so first
                    volumes[destination.volume].check_user_write(MOVING)
                _check_removable(volumes[source.volume], source.path)
                leaving.setdefault(source.volume, []).append(source.path)
                if (not replace and _exists(volumes, destination) and not _is_dir(volumes, destination)
                        and not _same_file(volumes, source, destination)):
                    if destination.volume is None:
                        raise errors.error("OPV0303", path=destination.path)
                    raise errors.error("CPF1F24", path=destination.path, volume=destination.volume)
        for volume_id, paths in leaving.items():
            _check_room_to_remove(volumes[volume_id], paths)
        left = None  # the first source whose delete left what another process changed: said at the end
        for source, destination in plan:
            if source.volume == destination.volume:
                volumes[source.volume].rename(source.path, destination.path)
                yield str(destination)
                continue
            mark = move_source.change_mark(volumes[source.volume])  # before the copy reads anything
            copied = PathSpool("mv")  # (not a list: a tree may hold a million files)
            try:
                for path in _copy_one(volumes, source, destination, replace=replace, moving=True):
                    copied.add(path)
                kept = move_source.remove_moved(volumes[source.volume], source.path, mark,
                                                copied_dir=_copied_dirs(volumes, source, destination))
                yield from copied  # moved only now that the source is gone
            finally:
                copied.close()
            left = left or kept
        if left is not None:
            raise left


def _copied_dirs(volumes: _Volumes, source: Location, destination: Location) -> Callable[[str], bool]:
    """Whether ``destination``, the copy of the tree at ``source``, holds a directory in the place
    of a directory below that tree (its path on the source's volume, in any spelling)."""
    depth = len([name for name in source.path.split("/") if name])

    def copied(path: str) -> bool:
        place = destination
        for name in [name for name in path.split("/") if name][depth:]:
            place = place.child(name)
        return _is_dir(volumes, place)

    return copied


def _check_removable(volume: Volume, path: str, *, operation: str = "moving a file off the volume") -> None:
    """Refuse a move off the volume whose source could not be deleted after the copy (or an
    rm of several paths, one of which could not be deleted)."""
    volume.check_user_write(operation)
    if volume.image.read_only:  # a read-only or full file system, a user who may only read it
        raise volume.image.write_refusal(operation)
    files = volume.iter_files(path, recursive=True) if volume.is_dir(path) else [volume.stat(path)]
    for info in files:
        if info.read_only:
            raise errors.error("CPF1F37", path=info.path, volume=volume.id)


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` of one volume once each, in any spelling, and none that lies below another:
    what deleting them all with their trees deletes (each one's ancestors are looked up, not
    every pair compared: rm may be given many paths)."""
    named = {model.name_key(path).rstrip("/"): path for path in paths}
    return [path for key, path in named.items() if not any(key[:at] in named for at in range(len(key)) if key[at] == "/")]


class _Undo(Exception):
    """Ends the trial of ``_check_room_to_remove``: its transaction is rolled back."""


RECORD_BYTES = 2048  # more than a DELETE or REMOVE_DIRECTORY record of the longest path takes


def _check_room_to_remove(volume: Volume, paths: list[str]) -> None:
    """On HPOFS a delete writes records the threshold charges (docs/format.md §7): unless
    the volume has room to delete everything on it, try the deletes of ``paths`` in one
    transaction that is then undone, so that a volume too full for them refuses (CPF1F61)
    before a move copies anything or rm deletes the first path. ``paths`` named twice, in
    any spelling, or below another count once, as the deletes will take them."""
    info = volume.info()
    if info.media_format != model.MediaFormat.HPOFS:
        return  # UDF charges no delete
    if info.available >= (info.files + info.directories) * -(-RECORD_BYTES // info.sector_size) * info.sector_size:
        return
    try:
        with volume.batch():
            for path in _outermost(paths):
                _remove(volume, path, recursive=True)
            raise _Undo
    except _Undo:
        pass


# --------------------------------------------------------------------- rm / mkdir / rmdir / chattr


def volume_location(text: str) -> Location:
    where = Location.of(text)
    if where.volume is None:
        raise errors.error("CPF1F48", path=text, reason="this command works on /QOPT/<volume>/... paths")
    return where


def remove(library: Library, paths: list[str], *, recursive: bool = False, operation: str = "rm without -r") -> list[str]:
    """rm (RMVLNK): delete files (and with ``recursive`` whole directory trees). Every path
    is checked before the first is deleted: one that cannot go (missing, a directory
    without ``recursive``, read-only, on a volume users cannot write) leaves all in place.
    One path alone goes in one transaction, which needs no such look ahead. Returns what
    was deleted, each entry once, as ``/QOPT/<volume>/...`` (``_reported``)."""
    with _session(library) as volumes:
        named: dict = {}
        for where in map(volume_location, paths):  # a path named twice (in two spellings, say) is deleted once,
            named.setdefault(where.identity, where)  # and reported as first given
        targets = list(named.values())
        if recursive:  # and with -r, so is one below another
            kept = {vol: set(_outermost([t.path for t in targets if t.volume == vol])) for vol in {t.volume for t in targets}}
            targets = [w for w in targets if w.path in kept[w.volume]]
        for where in targets:
            volume = volumes[where.volume]
            if volume.is_dir(where.path) and not recursive:
                raise errors.error("OPV0108", path=where.path, volume=where.volume, operation=operation)
            if not volume.exists(where.path):
                raise errors.error("CPF1F22", path=where.path, volume=where.volume)
            if len(targets) > 1:
                _check_removable(volume, where.path, operation="deleting a file")
        if len(targets) > 1:
            for volume_id in {w.volume for w in targets}:
                _check_room_to_remove(volumes[volume_id], [w.path for w in targets if w.volume == volume_id])
        for where in targets:
            _remove(volumes[where.volume], where.path, recursive=recursive)
        return [_reported(where) for where in targets]


def _reported(where: Location) -> str:
    """A removed entry as the file commands report paths: ``/QOPT/<volume>/...``, no final '/'."""
    return str(Location(where.volume, where.path.rstrip("/") or "/"))


def _remove(volume: Volume, path: str, *, recursive: bool) -> None:
    if not volume.is_dir(path):
        volume.remove(path)
        return
    volume.check_user_write("deleting a directory")
    with volume.batch():
        # Each directory after every one below it (they sort after it), its files a page at a
        # time: every name of the tree held at once took rm -r of 1,000,000 files to 270 MiB (scale31 F1).
        for dirpath in reversed([directory.path for directory in volume.iter_dirs(path)]):
            for info in volume.iter_files(dirpath):
                volume.remove(info.path)
            if dirpath != "/":
                volume.rmdir(dirpath)


def make_directory(library: Library, paths: list[str], *, parents: bool = False) -> Iterator[str]:
    """mkdir (with ``parents``, like ``mkdir -p``; CRTDIR): gives each directory made, as
    ``/QOPT/<volume>/...`` with the parents' names as stored, once it is made, as copy gives
    its files, so a path that fails after others leaves them reported. (A check of every
    path first, as remove makes, would not foresee every failure: a volume that fills up,
    one directory named twice.) With ``parents``, the missing parents come first, each
    listed, and a directory that exists is not."""
    with _session(library) as volumes:
        for where in map(volume_location, paths):
            volume = volumes[where.volume]
            missing = _missing_directories(volume, where.path) if parents else 1
            made = volume.mkdir(where.path, parents=parents, exist_ok=parents).path.rstrip("/").split("/")
            for end in range(len(made) - missing + 1, len(made) + 1):
                yield str(Location(where.volume, "/".join(made[:end])))


def _missing_directories(volume: Volume, path: str) -> int:
    """How many of ``path`` and its parents are no directory yet: those ``mkdir -p`` makes."""
    names = [name for name in path.split("/") if name]
    return sum(not volume.is_dir("/" + "/".join(names[:end])) for end in range(1, len(names) + 1))


def remove_directory(library: Library, paths: list[str], *, subtree: bool = False) -> Iterator[str]:
    """rmdir (RMVDIR): an empty directory, or with ``subtree`` everything below it too; gives
    each path once its directory is gone, as ``/QOPT/<volume>/...`` (as make_directory gives
    what it made)."""
    with _session(library) as volumes:
        for path in paths:
            where = volume_location(path)
            volume = volumes[where.volume]
            if subtree:
                if not volume.is_dir(where.path):
                    raise errors.error("CPF1F02", path=where.path, volume=where.volume)
                _remove(volume, where.path, recursive=True)
            else:
                volume.rmdir(where.path)
            yield _reported(where)


def change_attributes(library: Library, path: str, *, read_only: bool | None = None, hidden: bool | None = None) -> FileInfo:
    """chattr (CHGATR): the read-only and hidden flags of a file."""
    where = volume_location(path)
    with library.open(where.volume) as volume:
        return volume.set_attributes(where.path, read_only=read_only, hidden=hidden)


def rename(library: Library, path: str, new_name: str) -> str:
    """RNM: give a file or directory a new name in the same directory; returns its new path."""
    where = volume_location(path)
    if "/" in new_name or not new_name:
        raise errors.error("CPF1F21", name=new_name, reason="RNM takes a new name, not a path")
    parent = where.path.rstrip("/").rsplit("/", 1)[0]
    target = Location(where.volume, parent + "/" + new_name)
    with library.open(where.volume) as volume:
        volume.rename(where.path, target.path)
    return str(target)
