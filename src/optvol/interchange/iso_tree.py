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
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

from optvol.interchange import iso9660 as iso

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

    def __init__(self, rows: Iterable[tuple[int, int | None, int]]) -> None:
        """``rows``: (id, parent id, created) of every directory in path order, the root first."""
        self.ids, parent_ids, self.created = array("q"), array("q"), array("q")
        for dir_id, parent, created in rows:
            self.ids.append(dir_id)
            parent_ids.append(dir_id if parent is None else parent)
            self.created.append(created)
        count = len(self.ids)
        by_id = sorted(range(count), key=self.ids.__getitem__)
        self._sorted_ids = array("q", (self.ids[number] for number in by_id))
        self._by_id = array(NUMBER, by_id)
        del by_id
        self.parent = array(NUMBER, (self.number(dir_id) for dir_id in parent_ids))
        self.links = _numbers(count, NUMBER)  # 2 + its subdirectories (Rock Ridge PX, UDF links less one)
        for number, parent in enumerate(self.parent):
            self.links[number] += 2
            if number:
                self.links[parent] += 1
        self.iso_names, self.joliet_names = Names(count), Names(count)
        self.iso_names[0] = self.joliet_names[0] = iso.DOT
        self.iso, self.joliet = Places(count), Places(count)
        self.continuation = Places(count)  # its Rock Ridge continuation area
        self.udf_entry = _numbers(count, PLACE)  # the sector of its UDF file entry
        self.udf_identifiers = Places(count)  # its UDF file identifiers

    def __len__(self) -> int:
        return len(self.ids)

    def number(self, dir_id: int) -> int:
        """The number of the directory of id ``dir_id``."""
        return self._by_id[bisect_left(self._sorted_ids, dir_id)]

    def path_table(self, *, joliet: bool) -> tuple[array, array]:
        """The path table's order: (directory, parent's place in the table) of every
        directory, breadth first, each level by parent's place, then identifier (ECMA-119 §9.4)."""
        first, children = self._children()

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

    def _children(self) -> tuple[array, array]:
        """(first, children): the subdirectories of directory n are children[first[n]:first[n + 1]], in path order."""
        first = _numbers(len(self) + 1, NUMBER)
        for number in range(1, len(self)):
            first[self.parent[number] + 1] += 1
        for number in range(len(self)):
            first[number + 1] += first[number]
        children, filled = _numbers(len(self) - 1, NUMBER), array(NUMBER, first)
        for number in range(1, len(self)):
            parent = self.parent[number]
            children[filled[parent]] = number
            filled[parent] += 1
        return first, children
