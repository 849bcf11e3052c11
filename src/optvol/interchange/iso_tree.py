"""The directories of an image being written (export side), held as numbers.

``iso_writer.py`` places every directory before it writes any: the records of a
subdirectory, the ".." of each directory and the path tables give the places of others.
What that layout needs of a directory is held here, in arrays indexed by the directory's
number in path order (0: the root): its id in the index, its parent's number, its creation
time, its links, its names in the ISO 9660 and Joliet path tables, and the (sector, bytes)
of each of its extents. Its row, its path and its other names are read again from the
index when the directory is laid out. export-iso of a volume of 65,534 directories of
200-character names peaked at 239 MB of RSS when each directory was an object holding its
row (DESIGN §6 asks under 150 MiB); held this way a directory costs about 250 bytes, its
names included.

ISO 9660 allows eight levels of directories, the root the first (ECMA-119 §6.8.2.1). A
directory that would be deeper is relocated as Rock Ridge does it (RRIP 1.12 §4.1.5): in the
ISO 9660 tree it lies in a directory ``RR_MOVED`` of the root (the relocation directory, one
more number after the volume's directories), its record there marked RE and its ".."
linking (PL) to its parent, where a file record in its place links to it (CL). Joliet and
UDF keep the volume's tree; ``parent`` is a directory's parent in the volume and in those,
``iso_parent`` in the ISO 9660 tree.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

from optvol.interchange import iso9660 as iso

ISO_LEVELS = 8  # ECMA-119 §6.8.2.1
RELOCATED_LEVEL = 3  # of a directory relocated: the root, RR_MOVED, the directory
NUMBER, PLACE = "i", "I"  # the typecodes of directory numbers and counts, and of sectors and sizes (32 bits in ISO 9660)


def _numbers(count: int, typecode: str) -> array:
    """``count`` zeros."""
    return array(typecode, bytes(array(typecode).itemsize * count))


class Places:
    """(sector, bytes) of one extent of every directory, in two arrays."""

    def __init__(self, count: int) -> None:
        self._sector, self._size = _numbers(count, PLACE), _numbers(count, PLACE)

    def __getitem__(self, number: int) -> tuple[int, int]:
        return self._sector[number], self._size[number]

    def __setitem__(self, number: int, place: tuple[int, int]) -> None:
        self._sector[number], self._size[number] = place


class Names:
    """One name of every directory (at most 255 bytes), all in one buffer; each is given once."""

    def __init__(self, count: int) -> None:
        self._buffer = bytearray()
        self._start, self._length = _numbers(count, PLACE), _numbers(count, "B")

    def __getitem__(self, number: int) -> bytes:
        start = self._start[number]
        return bytes(self._buffer[start:start + self._length[number]])

    def __setitem__(self, number: int, name: bytes) -> None:
        self._start[number], self._length[number] = len(self._buffer), len(name)
        self._buffer += name


class DirTree:
    """Every directory of an image, by number in path order, parents first."""

    def __init__(self, rows: Iterable[tuple[int, int | None, int]], *, relocate: bool = True) -> None:
        """``rows``: (id, parent id, created) of every directory in path order, the root first;
        without ``relocate`` no directory is relocated."""
        self.ids, parent_ids, self.created = array("q"), array("q"), array("q")
        for dir_id, parent, created in rows:
            self.ids.append(dir_id)
            parent_ids.append(dir_id if parent is None else parent)
            self.created.append(created)
        count = self.volume_dirs = len(self.ids)
        by_id = sorted(range(count), key=self.ids.__getitem__)
        self._sorted_ids = array("q", (self.ids[number] for number in by_id))
        self._by_id = array(NUMBER, by_id)
        del by_id
        self.parent = array(NUMBER, (self.number(dir_id) for dir_id in parent_ids))
        del parent_ids
        self.iso_parent = array(NUMBER, self.parent)
        self.links = _numbers(count, NUMBER)  # 2 + its subdirectories (Rock Ridge PX, UDF links less one)
        for number, parent in enumerate(self.parent):
            self.links[number] += 2
            if number:
                self.links[parent] += 1
        self.moved = self._relocate() if relocate else 0  # the number of RR_MOVED; 0 if nothing is relocated
        # the Rock Ridge name of each directory relocated whose name was cut (the others keep their
        # own: held for all, 65,526 names of 241 characters took export-iso over 150 MiB; hunt31e F2)
        self.moved_names: dict[int, bytes] = {}
        count = len(self.ids)
        self.iso_names, self.joliet_names = Names(count), Names(count)
        self.iso_names[0] = self.joliet_names[0] = iso.DOT
        self.iso, self.joliet = Places(count), Places(count)
        self.continuation = Places(count)  # its Rock Ridge continuation area
        self.udf_entry = _numbers(count, PLACE)  # the sector of its UDF file entry
        self.udf_identifiers = Places(count)  # its UDF file identifiers

    def _relocate(self) -> int:
        """Move every directory that would lie deeper than ISO_LEVELS to RR_MOVED, added as
        the last directory, its parent the root; return its number (0: none is moved)."""
        moved = len(self.ids)
        levels = array("b", [1]) * moved
        for number in range(1, moved):  # parents first
            levels[number] = levels[self.iso_parent[number]] + 1
            if levels[number] > ISO_LEVELS:
                self.iso_parent[number], levels[number] = moved, RELOCATED_LEVEL
        if moved not in self.iso_parent:
            return 0
        self.ids.append(-1)  # no directory of the volume
        self.created.append(self.created[0])
        self.parent.append(0)
        self.iso_parent.append(0)
        self.links.append(2 + self.iso_parent.count(moved))
        return moved

    def is_moved(self, number: int | None) -> bool:
        """Whether directory ``number`` is RR_MOVED (none is if nothing is relocated)."""
        return self.moved != 0 and number == self.moved

    def relocated(self, number: int) -> bool:
        """Whether directory ``number`` lies in RR_MOVED in the ISO 9660 tree."""
        return self.iso_parent[number] != self.parent[number]

    def __len__(self) -> int:
        return len(self.ids)

    def number(self, dir_id: int) -> int:
        """The number of the directory of id ``dir_id``."""
        return self._by_id[bisect_left(self._sorted_ids, dir_id)]

    def path_table(self, *, joliet: bool) -> tuple[array, array]:
        """The path table's order: (directory, parent's place in the table) of every
        directory, breadth first, each level by parent's place, then identifier (ECMA-119 §9.4):
        of the ISO 9660 tree, or with ``joliet`` of the volume's tree (no RR_MOVED)."""
        first, children = self._children(self.parent if joliet else self.iso_parent, skip=self.moved if joliet else 0)

        def key(number: int) -> bytes | tuple[bytes, bytes]:
            return self.joliet_names[number] if joliet else iso.iso_order(self.iso_names[number])

        order, parents = array(NUMBER, [0]), array(NUMBER, [1])
        at = 0
        while at < len(order):
            directory = order[at]
            at += 1
            kids = sorted(children[first[directory]:first[directory + 1]], key=key)
            order.extend(kids)
            parents.extend([at] * len(kids))
        return order, parents

    def _children(self, parents: array, *, skip: int) -> tuple[array, array]:
        """(first, children): the subdirectories of directory n by ``parents`` are
        children[first[n]:first[n + 1]], in path order; without directory ``skip`` (if not 0)."""
        numbers = [number for number in range(1, len(self)) if number != skip] if skip else range(1, len(self))
        first = _numbers(len(self) + 1, NUMBER)
        for number in numbers:
            first[parents[number] + 1] += 1
        for number in range(len(self)):
            first[number + 1] += first[number]
        children, filled = _numbers(len(self) - 1, NUMBER), array(NUMBER, first)
        for number in numbers:
            parent = parents[number]
            children[filled[parent]] = number
            filled[parent] += 1
        return first, children
