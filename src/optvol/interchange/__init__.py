"""ISO 9660 / UDF interchange with real discs and tools (DESIGN §2 layer 5).

Every byte of an image is read and written by our own code (pycdlib serves the tests as a
second reader). ``export_iso`` writes a volume as an image that
xorriso, isoinfo, 7-Zip and bsdtar read; ``import_iso`` makes an image made by any tool a
read-only volume (or copies its tree onto a primary volume).
"""

from optvol.interchange.iso_export import ExportResult, export_iso
from optvol.interchange.iso_import import ImportResult, import_iso

__all__ = ["ExportResult", "ImportResult", "export_iso", "import_iso"]
