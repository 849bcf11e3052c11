"""CHGOPTVOL: change a volume's threshold, text or authorization list (reference §10.1)."""

from __future__ import annotations

from optvol import media, model
from optvol.library import Library
from optvol.model import VolumeInfo

SAME = None
NONE = "*NONE"


def chgoptvol(
    library: Library, *, vol: str, threshold: int | None = SAME, text: str | None = SAME, autl: str | None = SAME
) -> VolumeInfo:
    """CHGOPTVOL VOL THRESHOLD AUTL TEXT; None is *SAME, ``autl`` "*NONE" removes the list.

    Refused: any THRESHOLD on a volume initialized as *BACKUP (OPV0102); a UDF threshold
    other than 100 (OPT1542 reason 05); a value out of range (OPV0005); TEXT or
    THRESHOLD on read-only media (CPF1F63). AUTL is kept by the library, not the volume.
    """
    volume_id = model.volume_id(vol)
    media.check_threshold(threshold, special="*SAME")
    if text is not SAME:
        text = model.text_value(text)
    if autl is not SAME and autl.upper() != NONE:
        autl = model.autl_name(autl)
    name = SAME if autl is SAME else None if autl.upper() == NONE else autl
    fields = {k: v for k, v in (("threshold", threshold), ("text", text)) if v is not SAME}
    with library.locked():
        with library.open(volume_id) as volume:
            if fields and autl is not SAME:  # all or nothing: the list follows the label's commit
                media.check_label_change(volume.image.label(), volume=volume_id, threshold=threshold)
                library.set_autl_with_label(volume_id, name, fields=fields, label=volume.image.label,
                                            change=lambda: volume.change_label(threshold=threshold, text=text))
            elif fields:
                volume.change_label(threshold=threshold, text=text)  # the volume's rules are checked there
            elif autl is not SAME:
                library.set_autl(volume_id, name)
            return volume.info()

