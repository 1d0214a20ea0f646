"""Untrusted uploads inspected safely (review M5), through the real upload endpoint.

A qcow2 is checked in Python before qemu-img opens it: what points outside the file (backing
file, external data file — a `json:{"driver":"nbd",…}` one included), encryption and unknown
incompatible features are refused by that header check. To prove qemu-img never ran, these
tests point IMAGE_INSPECT_QEMU_IMG at a tripwire: a script that fails with "TRIPWIRE" in its
message, so a refusal that went through qemu-img says so (checked by a control upload).
A file declared raw is refused when any of QEMU's format probes recognises it.

Every file is real: made by qemu-img where it can make that format, crafted byte by byte from
QEMU's format descriptions where it cannot (bochs, cloop, dmg, a patched qcow2 header)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iaas.models import AuditEvent
from images.models import Image

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/images"
MIB = 1024 * 1024
NBD_DATA_FILE = (
    b'json:{"driver":"nbd","server":{"type":"inet","host":"10.0.0.5","port":"10809"},"export":"x"}'
)


# ---- helpers -------------------------------------------------------------------------------


def qemu_img(*args: str, cwd: Path | None = None) -> None:
    for _ in range(5):
        result = subprocess.run(
            ["qemu-img", *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=120
        )
        # Making a LUKS header, qemu-img times its key derivation in CPU time; on a loaded
        # machine that measure can come out empty and qemu-img gives up: try again.
        if "Unable to get accurate CPU usage" not in result.stderr:
            break
    assert result.returncode == 0, (args, result.stderr)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


@pytest.fixture
def store(image_store: Path) -> Path:
    return image_store


@pytest.fixture
def member(make_tenant: Any, make_caller: Any) -> Any:
    return make_caller(make_tenant("acme"), "member")


@pytest.fixture
def tool_dir() -> Iterator[Path]:
    """A directory the sandbox's user can read and execute from (pytest's tmp_path is private
    to root, and a confined command must be able to run the scripts put here)."""
    directory = Path(tempfile.mkdtemp(prefix="andromede-m5-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


@pytest.fixture
def tripwire(settings: Any, tool_dir: Path) -> None:
    """qemu-img replaced by a script that fails saying it ran."""
    path = script(tool_dir, "qemu-img", 'echo "qemu-img: TRIPWIRE: qemu-img ran" >&2\nexit 1\n')
    settings.IMAGE_INSPECT_QEMU_IMG = str(path)


def created(client: Any, disk_format: str) -> str:
    response = client.post(URL, {"name": "disk", "disk_format": disk_format}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def upload(client: Any, image_id: str, body: bytes) -> Any:
    return client.put(f"{URL}/{image_id}/file", data=body, content_type="application/octet-stream")


def assert_refused(client: Any, image_id: str, body: bytes, store: Path) -> str:
    """Upload `body`: refused (400 image_refused), the image in `error` saying why, nothing
    kept in the store, one refused audit event. Returns the message."""
    response = upload(client, image_id, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "image_refused", error
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.ERROR
    assert image.error_message == error["message"]
    assert image.checksum_sha256 == ""
    assert image.size_bytes is None
    assert sorted(p.name for p in store.iterdir()) == []  # no file, no sandbox directory
    event = AuditEvent.objects.get(action="image.upload", target_id=image_id)
    assert event.outcome == "refused"
    return str(error["message"])


# ---- qcow2 headers patched the way an attacker would --------------------------------------


def header_extensions(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """(where the extensions start, [(type, payload)…]) of a qemu-img-made v3 qcow2."""
    header_length = struct.unpack_from(">I", data, 100)[0]
    offset = header_length
    found: list[tuple[int, bytes]] = []
    while True:
        kind, length = struct.unpack_from(">II", data, offset)
        if kind == 0:
            return header_length, found
        found.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + ((length + 7) & ~7)


def with_extensions(data: bytes, extensions: list[tuple[int, bytes]]) -> bytes:
    start, old = header_extensions(data)
    old_end = start + sum(8 + ((len(p) + 7) & ~7) for _, p in old) + 8
    new = b"".join(
        struct.pack(">II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)
        for kind, payload in extensions
    ) + struct.pack(">II", 0, 0)
    padding = b"\0" * max(0, old_end - start - len(new))
    return data[:start] + new + padding + data[start + len(new) + len(padding) :]


def with_incompatible_bits(data: bytes, bits: int) -> bytes:
    features = struct.unpack_from(">Q", data, 72)[0] | bits
    return data[:72] + struct.pack(">Q", features) + data[80:]


def qcow2_bytes(files: Path, *options: str, name: str = "disk.qcow2", size: str = "1M") -> bytes:
    qemu_img("create", "-q", "-f", "qcow2", *options, name, size, cwd=files)
    return (files / name).read_bytes()


def nbd_data_file_qcow2(files: Path) -> bytes:
    """The review's reproduction: the data-file feature bit and an external data file name
    that is a json: specification of an NBD export on another machine."""
    data = qcow2_bytes(files, "-o", "data_file=x.raw")
    _, extensions = header_extensions(data)
    replaced = [(k, NBD_DATA_FILE if k == 0x44415441 else p) for k, p in extensions]
    crafted = with_extensions(data, replaced)
    assert NBD_DATA_FILE in crafted
    assert struct.unpack_from(">Q", crafted, 72)[0] & 4  # the data-file feature bit
    return crafted


def data_file_name_without_the_feature_bit(files: Path) -> bytes:
    data = qcow2_bytes(files)
    _, extensions = header_extensions(data)
    return with_extensions(data, [(0x44415441, NBD_DATA_FILE), *extensions])


def backing_file_qcow2(files: Path) -> bytes:
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "1M", cwd=files)
    return qcow2_bytes(files, "-b", "base.qcow2", "-F", "qcow2", name="overlay.qcow2")


def backing_json_qcow2(files: Path) -> bytes:
    """A backing file named by a json: NBD specification, written into the header."""
    data = bytearray(qcow2_bytes(files, size="1M"))
    offset = 0x1000  # inside the first cluster, past the extensions
    data[offset : offset + len(NBD_DATA_FILE)] = NBD_DATA_FILE
    struct.pack_into(">QI", data, 8, offset, len(NBD_DATA_FILE))
    return bytes(data)


def encrypted_qcow2(files: Path) -> bytes:
    qemu_img(
        "create", "-q", "--object", "secret,id=sec0,data=secret-passphrase", "-f", "qcow2",
        "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "enc.qcow2", "1M",
        cwd=files,
    )  # fmt: skip
    return (files / "enc.qcow2").read_bytes()


def unknown_incompatible_bit_qcow2(files: Path) -> bytes:
    return with_incompatible_bits(qcow2_bytes(files), 1 << 40)


def corrupt_bit_qcow2(files: Path) -> bytes:
    return with_incompatible_bits(qcow2_bytes(files), 1 << 1)


def version_4_qcow2(files: Path) -> bytes:
    data = qcow2_bytes(files)
    return data[:4] + struct.pack(">I", 4) + data[8:]


def huge_cluster_qcow2(files: Path) -> bytes:
    data = qcow2_bytes(files)
    return data[:20] + struct.pack(">I", 30) + data[24:]


def runaway_extension_qcow2(files: Path) -> bytes:
    data = qcow2_bytes(files)
    start, extensions = header_extensions(data)
    crafted = bytearray(with_extensions(data, extensions))
    struct.pack_into(">I", crafted, start + 4, 1 << 30)  # the first extension's length
    return bytes(crafted)


def truncated_header_qcow2(files: Path) -> bytes:
    return qcow2_bytes(files)[:60]


def extensions_without_end_qcow2(files: Path) -> bytes:
    """Unknown extensions (QEMU skips those) filling the whole first cluster, no end marker."""
    data = qcow2_bytes(files)
    start, _ = header_extensions(data)
    filler = b"".join(struct.pack(">II", 0x1234, 8) + b"\0" * 8 for _ in range(4096))
    return data[:start] + filler[: 65536 - start] + data[65536:]


BAD_QCOW2: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "nbd data file": (nbd_data_file_qcow2, "external data file"),
    "data file name alone": (data_file_name_without_the_feature_bit, "external data file"),
    "backing file": (backing_file_qcow2, "backing file"),
    "json backing file": (backing_json_qcow2, "backing file"),
    "encrypted": (encrypted_qcow2, "encrypted"),
    "unknown incompatible bit": (unknown_incompatible_bit_qcow2, "(bits 0x10000000000)"),
    "corrupt": (corrupt_bit_qcow2, "marked corrupt"),
    "version 4": (version_4_qcow2, "version 4 is not supported"),
    "cluster bits 30": (huge_cluster_qcow2, "cluster_bits 30"),
    "extension past the cluster": (runaway_extension_qcow2, "runs past the first cluster"),
    "truncated header": (truncated_header_qcow2, "shorter than a qcow2 header"),
    "extensions without an end": (extensions_without_end_qcow2, "have no end inside the first"),
}  # fmt: skip


@pytest.mark.usefixtures("tripwire")
def test_control_a_valid_qcow2_reaches_the_tripwire_qemu_img(member, files, store):
    # Without this, "the tripwire did not fire" below could mean the tripwire is broken.
    client = member.client()
    image_id = created(client, "qcow2")
    message = assert_refused(client, image_id, qcow2_bytes(files), store)
    assert "TRIPWIRE" in message


@pytest.mark.usefixtures("tripwire")
@pytest.mark.parametrize("case", list(BAD_QCOW2))
def test_a_qcow2_with_an_unsafe_or_malformed_header_is_refused_before_qemu_img_runs(
    case, member, files, store
):
    make, words = BAD_QCOW2[case]
    client = member.client()
    image_id = created(client, "qcow2")

    message = assert_refused(client, image_id, make(files), store)

    assert message.startswith("The qcow2 header check refused the file: "), message
    assert words in message
    assert "TRIPWIRE" not in message  # qemu-img never ran


def test_the_nbd_data_file_qcow2_is_refused_with_the_real_qemu_img_too(member, files, store):
    client = member.client()
    image_id = created(client, "qcow2")
    message = assert_refused(client, image_id, nbd_data_file_qcow2(files), store)
    assert message == (
        "The qcow2 header check refused the file: the image keeps its data in an external "
        "data file; upload a standalone image."
    )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(("-o", "compat=0.10"), id="version 2"),
        pytest.param(("-o", "compression_type=zstd"), id="zstd compression bit"),
        pytest.param(("-o", "extended_l2=on"), id="extended L2 bit"),
        pytest.param(("-o", "cluster_size=512"), id="512-byte clusters"),
        pytest.param(("-o", "cluster_size=2M"), id="2 MiB clusters"),
        pytest.param(("-o", "lazy_refcounts=on"), id="lazy refcounts"),
    ],
)
def test_standalone_qcow2_variants_still_upload(options, member, files, store):
    body = qcow2_bytes(files, *options, size="8M")
    client = member.client()
    image_id = created(client, "qcow2")
    response = upload(client, image_id, body)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert response.json()["virtual_size_bytes"] == 8 * MIB
    assert sorted(p.name for p in store.iterdir()) == [image_id]


def test_a_file_not_starting_with_the_qcow2_magic_is_refused_by_the_header_check(
    member, files, store, tripwire
):
    client = member.client()
    image_id = created(client, "qcow2")
    message = assert_refused(client, image_id, b"\0" * MIB, store)
    assert message == (
        "Andromède cannot read the file as qcow2: it does not start with the qcow2 signature."
    )


# ---- raw uploads that QEMU would probe as another format -----------------------------------


def made_by_qemu_img(fmt: str, *options: str, size: str = "1M") -> Callable[[Path], bytes]:
    def make(files: Path) -> bytes:
        qemu_img("create", "-q", "-f", fmt, *options, "disk", size, cwd=files)
        return (files / "disk").read_bytes()

    return make


def luks(files: Path) -> bytes:
    return made_by_qemu_img(
        "luks", "--object", "secret,id=sec0,data=pw", "-o", "key-secret=sec0,iter-time=10"
    )(files)


def vmdk_descriptor(files: Path) -> bytes:
    """A monolithicFlat VMDK's descriptor: text whose extents may name any host file."""
    qemu_img(
        "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "d.vmdk", "1M", cwd=files
    )
    text = (files / "d.vmdk").read_bytes()
    assert text.startswith(b"# Disk DescriptorFile")
    return text.replace(b'"d-flat.vmdk"', b'"/etc/shadow"') + b"\0" * (MIB - len(text))


def the_reviews_vmdk_probe(files: Path) -> bytes:
    """The review's probe: a comment, then `version=1` — no "# Disk DescriptorFile" line."""
    return b'# hello\nversion=1\nRW 2048 FLAT "/etc/shadow" 0\n'.ljust(MIB, b"\0")


def vmdk_with_blank_lines(files: Path) -> bytes:
    return b"  \r\n# c\n   \nversion=2\r\n".ljust(MIB, b"\0")


def bochs(files: Path) -> bytes:
    header = b"Bochs Virtual HD Image\0".ljust(32, b"\0") + b"Redolog\0".ljust(16, b"\0")
    header += b"Growing\0".ljust(16, b"\0") + struct.pack("<I", 0x00020000)
    return header.ljust(MIB, b"\0")


def cloop(files: Path) -> bytes:
    magic = (
        b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
    )
    return magic.ljust(128, b"\0") + struct.pack(">II", 65536, 1) + b"\0" * (MIB - 136)


def dmg(files: Path) -> bytes:
    trailer = b"koly" + struct.pack(">II", 4, 512) + b"\0" * 500
    return b"\0" * MIB + trailer


def dmg_with_padding(files: Path) -> bytes:
    return dmg(files) + b"\0" * 300  # QEMU finds the trailer with up to 511 bytes after it


def qcow_v1(files: Path) -> bytes:
    return made_by_qemu_img("qcow")(files)


RAW_DISGUISES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "qcow2": (made_by_qemu_img("qcow2"), "qcow2"),
    "qcow2 version 2": (made_by_qemu_img("qcow2", "-o", "compat=0.10"), "qcow2"),
    "qcow (v1)": (qcow_v1, "qcow"),
    "qed": (made_by_qemu_img("qed"), "qed"),
    "vmdk sparse": (made_by_qemu_img("vmdk"), "vmdk"),
    "vmdk streamOptimized": (made_by_qemu_img("vmdk", "-o", "subformat=streamOptimized"), "vmdk"),
    "vmdk text descriptor": (vmdk_descriptor, "vmdk"),
    "vmdk descriptor, review's probe": (the_reviews_vmdk_probe, "vmdk"),
    "vmdk descriptor, blank lines": (vmdk_with_blank_lines, "vmdk"),
    "vdi": (made_by_qemu_img("vdi"), "vdi"),
    "vpc dynamic": (made_by_qemu_img("vpc"), "vpc"),
    "vpc fixed (footer only)": (made_by_qemu_img("vpc", "-o", "subformat=fixed"), "vpc"),
    "vhdx": (made_by_qemu_img("vhdx", size="8M"), "vhdx"),
    "parallels": (made_by_qemu_img("parallels"), "parallels"),
    "luks": (luks, "luks"),
    "bochs": (bochs, "bochs"),
    "cloop": (cloop, "cloop"),
    "dmg trailer": (dmg, "dmg"),
    "dmg trailer with padding": (dmg_with_padding, "dmg"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RAW_DISGUISES))
def test_a_raw_upload_that_qemu_would_probe_as_another_format_is_refused(
    case, member, files, store, tripwire
):
    make, fmt = RAW_DISGUISES[case]
    client = member.client()
    image_id = created(client, "raw")
    message = assert_refused(client, image_id, make(files), store)
    assert message.startswith(f"The file is a {fmt} image, not raw"), message
    assert "TRIPWIRE" not in message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xeb\x63\x90" + os.urandom(MIB - 3), id="boot sector and random data"),
        pytest.param(b"version=1\n".rjust(1024, b"\0") + b"\0" * MIB, id="text past the probe"),
        pytest.param(b"\0" * MIB + b"koly" + b"\0" * 2044, id="koly too far from the end"),
        pytest.param(b"x\nversion=1\n".ljust(MIB, b"\0"), id="version= after a text line"),
    ],
)
def test_raw_files_qemu_would_not_probe_still_upload(body, member, store):
    client = member.client()
    image_id = created(client, "raw")
    response = upload(client, image_id, body)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert response.json()["virtual_size_bytes"] == len(body)


# ---- the sandbox, seen from the upload -----------------------------------------------------


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_the_uploads_qemu_img_runs_as_nobody_without_network_on_the_declared_driver(
    disk_format, member, files, store, settings, tool_dir
):
    # A stand-in qemu-img that reports how it was run (its last stderr line reaches the
    # refusal message): who it runs as, its network namespace, its arguments.
    reporter = script(
        tool_dir,
        "reporting-qemu-img",
        'echo "qemu-img: uid=$(id -u) gid=$(id -g) net=$(readlink /proc/self/ns/net) '
        'cwd=$(ls -A) args=$*" >&2\nexit 1\n',
    )
    settings.IMAGE_INSPECT_QEMU_IMG = str(reporter)
    body = qcow2_bytes(files) if disk_format == "qcow2" else b"\0" * MIB
    client = member.client()
    image_id = created(client, disk_format)

    message = assert_refused(client, image_id, body, store)

    prefix = f"qemu-img cannot read the file as {disk_format}: "
    assert message.startswith(prefix), message
    seen = dict(
        part.split("=", 1) for part in message.removeprefix(prefix).split(" args=")[0].split()
    )
    assert (seen["uid"], seen["gid"]) == ("65534", "65534")
    assert seen["net"] != os.readlink("/proc/self/ns/net")
    assert seen["cwd"] == "image"  # a private directory holding the upload alone
    assert message.endswith(
        " args=info --output=json --image-opts "
        f"driver={disk_format},file.driver=file,file.filename=image"
    )


def test_qemu_img_overrunning_its_time_is_refused_with_a_clear_message(
    member, files, store, settings, tool_dir
):
    slow = script(tool_dir, "slow-qemu-img", "exec sleep 30\n")
    settings.IMAGE_INSPECT_QEMU_IMG = str(slow)
    settings.IMAGE_INSPECT_TIMEOUT_SECONDS = 1.0
    client = member.client()
    image_id = created(client, "qcow2")

    message = assert_refused(client, image_id, qcow2_bytes(files), store)

    assert message == (
        "Inspecting the file failed: it ran longer than 1 s and was stopped; it was refused."
    )


def test_qemu_img_overrunning_its_cpu_time_is_refused_with_a_clear_message(
    member, files, store, settings, tool_dir
):
    spinning = script(tool_dir, "spinning-qemu-img", "while :; do :; done\n")
    settings.IMAGE_INSPECT_QEMU_IMG = str(spinning)
    settings.IMAGE_INSPECT_CPU_SECONDS = 1
    settings.IMAGE_INSPECT_TIMEOUT_SECONDS = 30.0
    client = member.client()
    image_id = created(client, "qcow2")

    message = assert_refused(client, image_id, qcow2_bytes(files), store)

    # the kernel stops it at the limit (SIGXCPU, or SIGKILL at the hard limit)
    assert message in {
        "Inspecting the file failed: qemu-img was stopped by a CPU or memory limit "
        f"(signal {int(number)}); it was refused."
        for number in (signal.SIGXCPU, signal.SIGKILL)
    }


def test_an_unusable_sandbox_refuses_the_upload_cleanly(member, files, store, settings):
    settings.IMAGE_INSPECT_USER = "no-such-user-m5"
    client = member.client()
    image_id = created(client, "qcow2")
    message = assert_refused(client, image_id, qcow2_bytes(files), store)
    assert "could not be inspected safely on this server" in message
    assert "no-such-user-m5" not in message  # the machine's setup is the operator's to read
