"""A Hypothesis state machine drives a Volume against a trivial dict model (zarr-python's
``testing/stateful.py`` idea). After every step the volume's listing, attributes, bytes and
space must match the model; every error must be the optvol error the model predicts. The
clock may be set back between steps: change times still only grow, and ``recover``
rebuilds the very index the steps made."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import FakeClock, make_volume
from integrity_helpers import index_dump
from optvol import errors
from optvol.library import Library
from optvol.model import MediaType
from optvol.recovery import recover

# é and É are one name; ß (whose upper case is SS) and SS are two (model.name_key).
NAMES = st.sampled_from(["a", "A", "b", "Cc", "cC", "d", "é", "É", "ß", "SS", "ss"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
DATA = st.binary(max_size=2500)
SECTOR = 2048


def key(path: str) -> str:
    return path.replace("ß", "\0").upper().replace("\0", "ß")


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def leaf(path: str) -> str:
    return path.rsplit("/", 1)[1]


def child(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


class VolumeMachine(RuleBasedStateMachine):
    medtype = MediaType.ERASE

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="optvol-stateful-")
        self.clock = FakeClock()
        self.library = Library(self.tmp + "/lib", clock=self.clock)
        make_volume(self.library, "SM", medtype=self.medtype)
        self.volume = self.library.open("SM")
        self.udf = self.medtype is MediaType.DVD_RAM
        # The model: upper-case key -> stored path (directories) or [stored path, data, read_only, hidden] (files).
        self.dirs: dict[str, str] = {"/": "/"}
        self.files: dict[str, list] = {}
        self.base_used = self.volume.info().used
        self.last_used = self.base_used
        self.changed_high = self.volume.image.meta("changed_high")
        self.stamps: dict[int, int] = {}  # files.id -> changed after the last step

    def teardown(self):
        self.volume.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ model helpers

    def _parent_error(self, path: str):
        """The error the volume gives when ``path``'s parent is not a directory, or None."""
        above = key(parent(path))
        if above in self.dirs:
            return None
        return errors.NotAllowedError if above in self.files else errors.NotFoundError

    def _expect(self, expected, action):
        if expected is None:
            return action()
        with pytest.raises(errors.OptvolError) as info:
            action()
        assert type(info.value) is expected, (info.value, expected)
        return None

    # ------------------------------------------------------------------ rules

    @rule(path=PATHS, data=DATA, replace=st.booleans())
    def write(self, path, data, replace):
        k = key(path)
        expected = self._parent_error(path)
        if expected is None and k in self.dirs:
            expected = errors.NotAllowedError
        elif expected is None and k in self.files:
            if not replace:
                expected = errors.ExistsError
            elif self.files[k][2]:
                expected = errors.NotAllowedError
        info = self._expect(expected, lambda: self.volume.write_bytes(path, data, replace=replace))
        if expected is None:
            stored = child(self.dirs[key(parent(path))], leaf(path))
            hidden = self.files[k][3] if k in self.files else False
            self.files[k] = [stored, data, False, hidden]
            assert info.path == stored and info.size == len(data)

    @rule(path=PATHS)
    def remove(self, path):
        k = key(path)
        expected = self._parent_error(path)
        if expected is None:
            if k in self.dirs:
                expected = errors.NotAllowedError
            elif k not in self.files:
                expected = errors.NotFoundError
            elif self.files[k][2]:
                expected = errors.NotAllowedError
        self._expect(expected, lambda: self.volume.remove(path))
        if expected is None:
            del self.files[k]

    @rule(path=PATHS, parents=st.booleans())
    def mkdir(self, path, parents):
        k = key(path)
        expected = None
        if k in self.dirs:
            expected = errors.ExistsError
        elif key(parent(path)) not in self.dirs:
            # With parents, missing directories are made unless a file is in the way.
            ancestors = []
            walk = parent(path)
            while key(walk) not in self.dirs:
                ancestors.append(walk)
                walk = parent(walk)
            if not parents:  # the parent is a file: "is a file" (OPV0109); else not found
                expected = errors.NotAllowedError if key(parent(path)) in self.files else errors.NotFoundError
            elif any(key(a) in self.files for a in ancestors):
                expected = errors.ExistsError
        if expected is None and k in self.files:
            expected = errors.ExistsError
        self._expect(expected, lambda: self.volume.mkdir(path, parents=parents))
        if expected is None:
            missing = []
            walk = path
            while key(walk) not in self.dirs:
                missing.append(walk)
                walk = parent(walk)
            for created in reversed(missing):
                self.dirs[key(created)] = child(self.dirs[key(parent(created))], leaf(created))

    @rule(path=PATHS)
    def rmdir(self, path):
        k = key(path)
        if k not in self.dirs:
            found = k in self.files and key(parent(path)) in self.dirs
            expected = errors.NotAllowedError if found else errors.NotFoundError
        elif any(parent(d) == k for d in self.dirs if d != "/") or any(key(parent(f)) == k for f in self.files):
            expected = errors.NotAllowedError
        else:
            expected = None
        self._expect(expected, lambda: self.volume.rmdir(path))
        if expected is None:
            del self.dirs[k]

    @rule(source=PATHS, destination=PATHS)
    def rename(self, source, destination):
        target = destination
        s, t = key(source), key(target)
        expected = None
        is_dir = s in self.dirs
        if not (is_dir or s in self.files) or self._parent_error(source) is not None:
            expected = errors.NotFoundError
        elif source == target:
            expected = errors.InvalidError
        else:
            expected = self._parent_error(target)
            if expected is None and s != t and (t in self.dirs or t in self.files):
                expected = errors.ExistsError
            elif expected is None and is_dir and (key(parent(target)) + "/").startswith(s + "/"):
                expected = errors.NotAllowedError
            elif expected is None and not is_dir and self.files[s][2]:
                expected = errors.NotAllowedError
        self._expect(expected, lambda: self.volume.rename(source, target))
        if expected is not None:
            return
        new_path = child(self.dirs[key(parent(target))], leaf(target))
        if not is_dir:
            entry = self.files.pop(s)
            entry[0] = new_path
            self.files[t] = entry
            return
        old_path = self.dirs[s]
        moved_dirs = {d: p for d, p in self.dirs.items() if d == s or d.startswith(s + "/")}
        for d in moved_dirs:
            del self.dirs[d]
        for p in moved_dirs.values():
            np = new_path + p[len(old_path):]
            self.dirs[key(np)] = np
        moved_files = {f: e for f, e in self.files.items() if f.startswith(s + "/")}
        for f in moved_files:
            del self.files[f]
        for e in moved_files.values():
            e[0] = new_path + e[0][len(old_path):]
            self.files[key(e[0])] = e

    @precondition(lambda self: self.files)
    @rule(data=st.data(), read_only=st.none() | st.booleans(), hidden=st.none() | st.booleans(),
          case=st.sampled_from([key, str.lower, str]))  # key: upper case as names fold
    def set_attributes(self, data, read_only, hidden, case):
        k = data.draw(st.sampled_from(sorted(self.files)))
        entry = self.files[k]
        info = self.volume.set_attributes(case(entry[0]), read_only=read_only, hidden=hidden)
        if read_only is not None:
            entry[2] = read_only
        if hidden is not None:
            entry[3] = hidden
        assert (info.path, info.read_only, info.hidden) == (entry[0], entry[2], entry[3])

    @rule(path=PATHS, read_only=st.booleans())
    def set_attributes_anywhere(self, path, read_only):
        k = key(path)
        expected = self._parent_error(path)
        if expected is None and k not in self.files:
            expected = errors.NotAllowedError if k in self.dirs else errors.NotFoundError
        self._expect(expected, lambda: self.volume.set_attributes(path, read_only=read_only))
        if expected is None:
            self.files[k][2] = read_only

    @rule(hours=st.integers(1, 48))
    def set_the_clock_back(self, hours):
        self.clock.now -= timedelta(hours=hours)

    @rule()
    def rebuild_the_index(self):
        """The index lost and rebuilt from the records is the same, change times included."""
        self.volume.close()
        index = self.library.root / "SM.optvol" / "index.sqlite"
        before = index_dump(index)
        for suffix in ("", "-wal", "-shm"):
            index.with_name(index.name + suffix).unlink(missing_ok=True)
        report = recover(self.library, vol="SM")
        assert report.damaged == [] and report.tail_cut == 0
        assert index_dump(index) == before
        self.volume = self.library.open("SM")

    # ------------------------------------------------------------------ invariants

    @invariant()
    def change_times_only_grow(self):
        """docs/format.md §4.1: ``changed_high`` never goes back and no file's change time
        lies above it; whatever the clock did, a step that changed files stamped them above
        every change before it."""
        high = self.volume.image.meta("changed_high")
        stamps = dict(self.volume.image.conn.execute("SELECT id, changed FROM files"))
        assert high >= self.changed_high and max(stamps.values(), default=0) <= high
        assert all(changed > self.changed_high for row, changed in stamps.items() if self.stamps.get(row) != changed)
        self.changed_high, self.stamps = high, stamps

    @invariant()
    def listing_matches(self):
        for k, stored in self.dirs.items():
            subdirs = sorted((leaf(p) for d, p in self.dirs.items() if d != "/" and key(parent(p)) == k), key=key)
            files = sorted((leaf(e[0]) for f, e in self.files.items() if key(parent(e[0])) == k), key=key)
            assert self.volume.listdir(stored) == subdirs + files
            assert self.volume.listdir(stored.lower()) == subdirs + files
        walked = {top: (dirs, names) for top, dirs, names in self.volume.walk("/")}
        assert set(walked) == set(self.dirs.values())

    @invariant()
    def files_match(self):
        for k, (stored, data, read_only, hidden) in self.files.items():
            info = self.volume.stat(k)
            assert (info.path, info.size, info.read_only, info.hidden) == (stored, len(data), read_only, hidden)
            assert self.volume.read_bytes(stored) == data

    @invariant()
    def live_file_counts_match(self):
        """Each directory row keeps its number of live files (CPYOPT's not-selected count):
        the model's count, and the index's own."""
        rows = self.volume.image.conn.execute(
            "SELECT path_key, live_files, (SELECT count(*) FROM files WHERE files.dir = dirs.id AND files.live = 1)"
            " FROM dirs WHERE live = 1").fetchall()
        model_counts = {k: sum(1 for f in self.files if key(parent(f)) == k) for k in self.dirs}
        assert {path_key: kept for path_key, kept, _ in rows} == model_counts
        assert all(kept == counted for _, kept, counted in rows)

    @invariant()
    def space_matches(self):
        used = self.volume.info().used
        if self.udf:
            live = sum(1 + -(-len(e[1]) // SECTOR) for e in self.files.values()) + len(self.dirs) - 1
            assert used == self.base_used + live * SECTOR
        else:
            assert used >= self.last_used  # HPOFS never frees
        self.last_used = used


class UdfVolumeMachine(VolumeMachine):
    medtype = MediaType.DVD_RAM


SETTINGS = settings(max_examples=40, stateful_step_count=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestHpofsVolume = VolumeMachine.TestCase
TestHpofsVolume.settings = SETTINGS
TestUdfVolume = UdfVolumeMachine.TestCase
TestUdfVolume.settings = SETTINGS
