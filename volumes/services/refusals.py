"""What volumes cannot do yet, refused alike everywhere: 400 `not_supported_yet`, naming
the volume's type (the project's one error shape; nothing is made on a refusal)."""

from __future__ import annotations

from iaas.errors import InvalidRequest
from volumes.models import Volume


def refuse_unbuilt(volume: Volume, verb: str) -> None:
    """Raise 400 `not_supported_yet` when `verb` ("Snapshots", "Exports") is not built for
    `volume`: one of an encrypted type (its copy would need the volume's secret on the host,
    and a key of its own or a decryption for what is made of it) or one on Ceph (RBD
    snapshots and `rbd export` are the ways there)."""
    if volume.volume_type.encrypted:
        what = "encrypted volumes"
    elif volume.ceph_cluster_id is not None:
        what = "volumes stored on Ceph (rbd)"
    else:
        return
    raise InvalidRequest(
        f"{verb} of {what} are not supported yet.",
        code="not_supported_yet",
        details={"volume_type": volume.volume_type.name},
    )
