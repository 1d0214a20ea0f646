"""The portal's images pages: the images a tenant may boot and its instance snapshots, an
image's detail, its deletion, and the upload (the record made by the portal, the file sent
to the API's PUT /images/{id}/file with the portal's session and CSRF token, as upload.js
does), with the API's rules: a foreign image is a 404, a reader reads and cannot write."""

from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace

import pytest
from django.test import Client

from iaas.models import AuditEvent
from images.models import Image
from tenants.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


def signed_in(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    client.cookies["andromede_language"] = "en"
    return client


@pytest.fixture
def portal(cloud: SimpleNamespace, make_tenant, make_caller) -> SimpleNamespace:
    cloud.other = make_tenant("other")
    cloud.reader = make_caller(cloud.tenant, Role.READER)
    cloud.web = signed_in(cloud.member.user)
    return cloud


def images_url(slug: str = "acme", tail: str = "") -> str:
    return f"/t/{slug}/images/{tail}"


def test_the_list_shows_the_tenants_and_the_public_images_not_anothers(portal, tiny_qcow2):
    factories.image(portal.tenant, "acme-debian", file=tiny_qcow2)
    factories.image(portal.other, "other-secret")

    page = portal.web.get(images_url())

    html = page.content.decode()
    assert page.status_code == 200
    assert "acme-debian" in html
    assert portal.image.name in html  # the public image
    assert "other-secret" not in html
    assert "Upload an image" in html


def test_a_snapshot_is_listed_apart_with_the_instance_it_was_taken_from(portal):
    instance, _ = factories.instance(portal.tenant, flavor=portal.flavor, image=portal.image)
    factories.image(portal.tenant, "web-1-before-upgrade", source_instance_id=instance.pk)

    html = portal.web.get(images_url()).content.decode()

    snapshots = html.split("Instance snapshots", 1)[1]
    assert "web-1-before-upgrade" in snapshots
    assert instance.name in snapshots


def test_the_detail_shows_the_full_sha256_and_the_instances_using_it(portal):
    instance, _ = factories.instance(portal.tenant, flavor=portal.flavor, image=portal.image)

    page = portal.web.get(images_url(tail=f"{portal.image.pk}/"))

    html = page.content.decode()
    assert page.status_code == 200
    assert len(portal.image.checksum_sha256) == 64
    assert portal.image.checksum_sha256 in html
    assert instance.name in html
    # A public image is the operators': no delete button for a tenant.
    assert f"{portal.image.pk}/delete/" not in html


def test_another_tenants_image_is_a_404_on_every_page(portal):
    foreign = factories.image(portal.other, "other-secret")

    for tail in ("", "delete/", "upload-status/", "file/"):
        assert portal.web.get(images_url(tail=f"{foreign.pk}/{tail}")).status_code == 404
    assert portal.web.post(images_url(tail=f"{foreign.pk}/delete/")).status_code == 404
    assert Image.objects.get(pk=foreign.pk).status == Image.Status.QUEUED


def test_a_reader_sees_no_write_button_and_its_posts_are_refused(portal, tiny_qcow2):
    own = factories.image(portal.tenant, "acme-debian", file=tiny_qcow2)
    reader = signed_in(portal.reader.user)
    before = Image.objects.count()

    listing = reader.get(images_url()).content.decode()
    detail = reader.get(images_url(tail=f"{own.pk}/")).content.decode()
    created = reader.post(images_url(tail="upload/"), {"name": "x", "disk_format": "qcow2"})
    deleted = reader.post(images_url(tail=f"{own.pk}/delete/"))

    assert "Upload an image" not in listing
    assert f"{own.pk}/delete/" not in detail
    assert created.status_code == 403
    assert deleted.status_code == 403
    assert Image.objects.count() == before
    assert Image.objects.get(pk=own.pk).status == Image.Status.ACTIVE


def test_the_upload_page_says_the_file_needs_javascript_and_labels_its_elements(portal):
    html = portal.web.get(images_url(tail="upload/")).content.decode()

    assert "<noscript>" in html
    assert 'id="upload-progress"' in html
    assert '<label for="upload-file">' in html
    assert 'src="/static/portal/upload.js"' in html
    assert "<script>" not in html  # no inline script: the CSP forbids it


def test_without_javascript_the_form_creates_the_record_and_its_page_says_how_to_send_it(portal):
    answer = portal.web.post(
        images_url(tail="upload/"), {"name": "my-debian", "disk_format": "qcow2"}
    )

    image = Image.objects.get(tenant=portal.tenant, name="my-debian")
    assert answer.status_code == 302
    assert answer["Location"] == images_url(tail=f"{image.pk}/")
    assert image.status == Image.Status.QUEUED
    page = portal.web.get(answer["Location"]).content.decode()
    assert "This image waits for its file." in page
    assert f"/api/v1/images/{image.pk}/file" in page


def test_the_upload_creates_the_record_then_the_api_takes_the_file_with_the_session(
    portal, tiny_qcow2
):
    """What upload.js does: the record through the portal (JSON), the file through the API
    with the session cookie, the CSRF token and the tenant, then the outcome fragment."""
    web = signed_in(portal.member.user, csrf=True)
    form = web.get(images_url(tail="upload/")).content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert found is not None
    token = found.group(1)

    made = web.post(
        images_url(tail="upload/"),
        {"name": "my-debian", "disk_format": "qcow2", "csrfmiddlewaretoken": token},
        HTTP_ACCEPT="application/json",
    )
    urls = made.json()
    refused = web.put(urls["upload_url"], tiny_qcow2.read_bytes(),
                      content_type="application/octet-stream", HTTP_X_TENANT="acme")  # fmt: skip
    sent = web.put(
        urls["upload_url"],
        tiny_qcow2.read_bytes(),
        content_type="application/octet-stream",
        HTTP_X_CSRFTOKEN=token,
        HTTP_X_TENANT="acme",
    )
    outcome = web.get(urls["status_url"]).content.decode()

    image = Image.objects.get(pk=urls["id"])
    expected = hashlib.sha256(tiny_qcow2.read_bytes()).hexdigest()
    assert made.status_code == 200
    assert refused.status_code == 403  # no CSRF token: the API refuses the session's PUT
    assert sent.status_code == 200, sent.content
    assert image.status == Image.Status.ACTIVE
    assert image.checksum_sha256 == expected
    assert f'<code id="upload-sha256">{expected}</code>' in outcome
    assert AuditEvent.objects.filter(action="image.upload", target_id=str(image.pk)).exists()


def test_the_record_form_answers_its_errors_as_json_and_makes_nothing(portal):
    before = Image.objects.count()

    answer = portal.web.post(
        images_url(tail="upload/"),
        {"name": " bad/name", "disk_format": "qcow2"},
        HTTP_ACCEPT="application/json",
    )

    assert answer.status_code == 400
    assert answer.json()["errors"]
    assert Image.objects.count() == before


def test_a_failed_upload_is_said_in_the_users_language(portal):
    image = factories.image(portal.tenant, "my-debian")
    french = Client()
    french.force_login(portal.member.user)
    status = images_url(tail=f"{image.pk}/upload-status/?error=image_not_queued")

    english = portal.web.get(status).content.decode()
    in_french = french.get(status).content.decode()
    unknown = portal.web.get(status.replace("image_not_queued", "bogus<b>")).content.decode()

    assert "create a new image to upload another file" in english
    assert "upload-sha256" not in english  # no SHA-256 before a file is kept
    assert "créez une nouvelle image pour envoyer un autre fichier" in in_french
    assert "The upload failed (bogus&lt;b&gt;). Try again." in unknown


def test_a_member_deletes_an_image_after_a_confirmation(portal, tiny_qcow2):
    own = factories.image(portal.tenant, "acme-debian", file=tiny_qcow2)

    confirm = portal.web.get(images_url(tail=f"{own.pk}/delete/"))
    deleted = portal.web.post(images_url(tail=f"{own.pk}/delete/"))

    own.refresh_from_db()
    assert confirm.status_code == 200
    assert own.checksum_sha256 in confirm.content.decode()
    assert deleted.status_code == 302
    assert own.status == Image.Status.DELETED
    assert AuditEvent.objects.filter(action="image.delete", target_id=str(own.pk)).exists()


def test_an_image_in_use_is_not_deleted_and_the_page_says_why(portal, tiny_qcow2):
    own = factories.image(portal.tenant, "acme-debian", file=tiny_qcow2)
    factories.instance(portal.tenant, flavor=portal.flavor, image=own)  # building from it

    answer = portal.web.post(images_url(tail=f"{own.pk}/delete/"), follow=True)

    own.refresh_from_db()
    assert own.status == Image.Status.ACTIVE
    assert "Instances still use this image: delete them first." in answer.content.decode()


def test_a_public_image_cannot_be_deleted_from_the_portal(portal):
    answer = portal.web.post(images_url(tail=f"{portal.image.pk}/delete/"), follow=True)

    portal.image.refresh_from_db()
    assert portal.image.status == Image.Status.ACTIVE
    assert "Public images are managed by the operators." in answer.content.decode()


def test_an_active_image_downloads_with_its_sha256(portal):
    answer = portal.web.get(images_url(tail=f"{portal.image.pk}/file/"))

    assert answer.status_code == 200
    assert answer["X-Content-SHA256"] == portal.image.checksum_sha256
    body = b"".join(answer.streaming_content)
    assert hashlib.sha256(body).hexdigest() == portal.image.checksum_sha256
