"""Uploading an image from the portal in a real browser: the progress bar moves while the file
is sent (the upload throttled through DevTools so there is something to see), and the page
then shows the SHA-256 the server computed, which is the file's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

from images.models import Image
from tests.support.browser import screenshot, sign_in
from tests.support.callers import PASSWORD

pytestmark = pytest.mark.browser


def qcow2_with_data(path, megabytes: int = 6):
    """A real qcow2 holding `megabytes` of random data (qemu-img's checks accept it)."""
    raw = path.with_suffix(".raw")
    raw.write_bytes(os.urandom(megabytes * 1024 * 1024))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True, timeout=60)  # fmt: skip
    raw.unlink()
    return path


def test_an_upload_shows_its_progress_then_the_servers_sha256(
    cloud, image_store, live_server, new_context, tmp_path
):
    cloud.member.user.set_password(PASSWORD)
    cloud.member.user.save()
    file = qcow2_with_data(tmp_path / "disk.qcow2")
    page = new_context("fr").new_page()
    sign_in(page, live_server, cloud.member.user.username, PASSWORD)
    page.goto("/t/acme/images/upload/")
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 5, "downloadThroughput": -1,
        "uploadThroughput": 2 * 1024 * 1024,  # bytes per second: ~3 s for the file
    })  # fmt: skip

    page.locator("#id_name").fill("mon-image")
    page.locator("#upload-file").set_input_files(str(file))
    page.locator("#upload-form button[type=submit]").click()
    seen: set[float] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.add(page.evaluate("() => document.getElementById('upload-progress').value"))
        if page.locator("#upload-sha256").count():
            break
        page.wait_for_timeout(100)
    screenshot(page, "image-upload")

    image = Image.objects.get(tenant=cloud.tenant, name="mon-image")
    expected = hashlib.sha256(file.read_bytes()).hexdigest()
    assert image.status == "active"
    assert image.checksum_sha256 == expected
    assert page.locator("#upload-sha256").inner_text().strip() == expected
    assert page.evaluate("() => document.getElementById('upload-progress').value") == 100
    moving = sorted(value for value in seen if 0 < value < 100)
    assert moving, f"the bar never showed a value between 0 and 100: {sorted(seen)}"
    assert "100" in page.locator("#upload-percent").inner_text()
