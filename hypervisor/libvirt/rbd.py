"""Writing an RBD image from a directory pool's volume, for `copy_storage_volume` into an rbd
pool. libvirt cannot do it: its rbd backend copies only within one pool (an RBD clone) and
refuses volume uploads (shared/notes/ceph-lab.md), so ``qemu-img convert -n`` writes the
image libvirt created, on this machine (the host must be local), reading the source through
its backing chain. The cephx key goes to qemu-img as a ``secret`` object read from a file in
a private temporary directory, removed after: never on a command line (``ps`` shows those),
never in an error message. librados waits for a monitor or an OSD as long as it takes
(a wrong key: 300 s of retries): a private ``ceph.conf`` bounds each wait, so a cluster
that cannot serve fails the copy within about a minute instead of holding it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass

from hypervisor.base import DriverError, RbdSource, TransientError

#: librados' own bounds (seconds): authenticating with the monitors, a monitor's answer, an
#: OSD's answer to one read or write.
CEPH_CONF = """\
[global]
client mount timeout = 10
rados mon op timeout = 30
rados osd op timeout = 60
"""


@dataclass(frozen=True)
class RbdCopy:
    """What `storage.plan_rbd_copy` found: the source file and format, and the image."""

    source_path: str
    source_format: str
    rbd: RbdSource
    image: str


def _opt(value: str) -> str:
    """A value inside a QEMU option string (``a=b,c=d``): a comma is doubled."""
    return value.replace(",", ",,")


def target_opts(copy: RbdCopy, conf: str) -> str:
    """The ``--target-image-opts`` of the image: raw over QEMU's rbd driver, the monitors,
    the user, the key by reference to the secret object ``andromede-key``, and the
    ``ceph.conf`` at `conf` (its bounds)."""
    opts = [
        "driver=raw",
        "file.driver=rbd",
        f"file.pool={_opt(copy.rbd.pool)}",
        f"file.image={_opt(copy.image)}",
        f"file.user={_opt(copy.rbd.user)}",
        "file.key-secret=andromede-key",
        f"file.conf={_opt(conf)}",
    ]
    for index, (host, port) in enumerate(copy.rbd.monitors):
        opts.append(f"file.server.{index}.host={_opt(host)}")
        opts.append(f"file.server.{index}.port={int(port)}")
    return ",".join(opts)


def write_image(copy: RbdCopy, key: bytes, timeout: float) -> None:
    """Convert the source into the existing image (``-n``: never create it). TransientError
    when it takes longer than `timeout` (qemu-img is killed); DriverError when it fails."""
    with tempfile.TemporaryDirectory(prefix="andromede-rbd-") as private:
        key_file = os.path.join(private, "key")
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(base64.b64encode(key))
        conf = os.path.join(private, "ceph.conf")
        with open(conf, "w") as out:
            out.write(CEPH_CONF)
        argv = [
            "qemu-img", "convert", "-n", "-f", copy.source_format,
            "--object", f"secret,id=andromede-key,file={_opt(key_file)},format=base64",
            copy.source_path, "--target-image-opts", target_opts(copy, conf),
        ]  # fmt: skip
        # No CEPH_CONF: the monitors and the key are all librados needs (a conf of the
        # caller's would bring another keyring).
        env = {k: v for k, v in os.environ.items() if not k.startswith("CEPH_")}
        try:
            done = subprocess.run(  # noqa: S603 - an argument list, no shell
                argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired:
            raise TransientError(
                f"qemu-img into RBD image {copy.image!r}: not done within {timeout:g} s"
            ) from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()[-500:]
        raise DriverError(f"qemu-img into RBD image {copy.image!r} failed: {reason}")
