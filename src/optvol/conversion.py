"""CVTOPTBKU: turn a *BACKUP volume into a *PRIMARY volume (reference §7, DESIGN §1).

One way. The volume takes the identifier of the primary it backed up (PRIVOL(*PRVPRIVOL))
or the one given, which must be unique in the library, so *PRVPRIVOL fails while the old
primary is still there. The type change and the rename happen together or not at all
(the library's journal). The threshold stays 99 but may be changed from now on; the
recorded primary, the backup ranges and the request log stay as history.
"""

from __future__ import annotations

from optvol import errors, model
from optvol.library import Library
from optvol.model import VolumeInfo, VolumeType
from optvol.volume_rows import check_paths_fit

PRVPRIVOL = None


def cvtoptbku(library: Library, *, bkuvol: str, privol: str | None = PRVPRIVOL) -> VolumeInfo:
    """CVTOPTBKU BKUVOL PRIVOL; ``privol`` None is *PRVPRIVOL."""
    volume_id = model.volume_id(bkuvol)
    with library.locked():
        with library.open(volume_id) as volume:
            label = volume.label()
        if label["type"] != VolumeType.BACKUP:
            raise errors.error("OPV0401", volume=volume_id, actual=label["type"], given=VolumeType.BACKUP)
        if privol is None:
            if label["primary_volume"] is None:
                raise errors.error("OPV0405", volume=volume_id)
            new_id = label["primary_volume"]
        else:
            new_id = model.volume_id(privol)
        if new_id != volume_id and library.exists(new_id):
            raise errors.error("OPV0003", volume=new_id, library=library.root)
        with library.open(volume_id) as volume:  # every path must fit under the new ID (CPF1F48)
            check_paths_fit(volume.image.conn, new_id)
        library.relabel(volume_id, fields={"volume": new_id, "type": str(VolumeType.PRIMARY)})
        with library.open(new_id) as converted:
            return converted.info()
