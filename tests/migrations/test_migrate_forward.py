"""A database of the previous version migrates forward with its data (issue 8).

The previous layout kept every model in `compute`; hosts, operations, images and network took
theirs over (tables unchanged), ports name their instance by `device_id` instead of a foreign
key, and content types followed the models. For a throwaway SQLite file and a throwaway
PostgreSQL database: tests/support/migration_forward.py migrates it to the old layout's last
migrations and fills it through that state's historical models, the real `manage.py migrate`
takes it forward, and the helper reads it back through the current models and code.

Every step runs in a subprocess on its own database: the test database of this process is
never migrated backwards (a failure half-way would leave an old schema to every later test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.support import databases
from tests.support.migration_forward import MOVED

ROOT = Path(__file__).resolve().parents[2]
HELPER = "tests.support.migration_forward"


@pytest.fixture(params=["sqlite", "postgresql"])
def throwaway_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The DATABASE_URL of an empty database of the test's own, removed afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'previous-version.sqlite3'}"
        return
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (DESIGN §12): the tests run on SQLite")
    with databases.throwaway_database("migrate_fwd") as name:
        yield databases.database_url(name)


def _run(args: list[str], database_url: str, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "iaas.settings",
        "DATABASE_URL": database_url,
        "ANDROMEDE_VAR_DIR": str(tmp_path / "var"),
        "ANDROMEDE_LOCAL_LIBVIRT_URI": "test:///default",
    }
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _expected_after_migration(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """An old row as it must read after the migration: ports name their instance by
    `device_id`; content types of moved models name their new app."""
    row = dict(row)
    if table == "django_content_type" and row["app_label"] == "compute":
        for app_label, models in MOVED.items():
            if row["model"] in models:
                row["app_label"] = app_label
        # The placeholder network models stepped aside (network 0002) for the real ones.
        if row["model"] in LEGACY_NETWORK_MODELS:
            row["model"] = LEGACY_NETWORK_MODELS[row["model"]]
    return row


#: The placeholder network models, renamed before the real ones replaced them.
LEGACY_NETWORK_MODELS = {"port": "legacyport", "tenantnetwork": "legacytenantnetwork"}
#: Their tables, copied into the networking tables and dropped (network 0004, 0005).
REPLACED_TABLES = {"compute_port", "compute_tenantnetwork"}


#: `manage.py migrate` at once, or first one new app alone (whose run already makes its
#: content types) and then the rest: both must end in the same database.
MIGRATE_RUNS: dict[str, list[list[str]]] = {"at_once": [[]], "hosts_first": [["hosts"], []]}


#: Models (app label, model) that did not exist in the previous layout.
MODELS_ADDED_SINCE = {
    ("otp_totp", "totpdevice"),
    ("otp_static", "staticdevice"),
    ("otp_static", "statictoken"),
    ("tenants", "authnoise"),
    ("tenants", "invitation"),
    ("iaas", "refusedread"),
    ("images", "imagestore"),
    *(
        ("network", model)
        for model in (
            "network",
            "subnet",
            "port",
            "fixedip",
            "router",
            "securitygroup",
            "securitygrouprule",
            "floatingip",
        )
    ),
    ("volumes", "volumetype"),
    ("volumes", "volume"),
    ("volumes", "volumeattachment"),
    ("volumes", "volumesnapshot"),
    ("volumes", "tenantkey"),
    ("images", "export"),
    ("iaas", "auditverification"),
    ("portal", "preference"),
    ("hosts", "cephcluster"),
    ("compute", "migration"),
}

#: Permissions (app label, codename) of existing models that did not exist in that layout.
PERMISSIONS_ADDED_SINCE = {("tenants", "operate_cloud")}


@pytest.mark.parametrize("runs", list(MIGRATE_RUNS))
def test_a_database_of_the_previous_layout_migrates_forward_with_its_data(
    throwaway_database: str, tmp_path: Path, runs: str
) -> None:
    old_file, new_file = tmp_path / "old.json", tmp_path / "new.json"

    _run(["-m", HELPER, "old", str(old_file)], throwaway_database, tmp_path)
    old = json.loads(old_file.read_text())
    ids = old["expected"]
    # The old layout, and nothing after it: every model in compute, the new apps unapplied.
    applied = {tuple(migration) for migration in old["applied"]}
    assert ("compute", "0011_orphan_volumes") in applied
    assert ("compute", "0012_port_device_id") not in applied
    assert not {app for app, _ in applied} & set(MOVED)
    assert {"compute.Host", "compute.Operation", "compute.Image", "compute.Port"} <= set(
        old["models"]
    )
    assert old["tables"]["compute_port"], "the old database has ports"

    migrated = "".join(
        _run(["manage.py", "migrate", *apps, "--noinput"], throwaway_database, tmp_path)
        for apps in MIGRATE_RUNS[runs]
    )
    assert "Applying compute.0014_models_moved_to_their_apps... OK" in migrated

    _run(["-m", HELPER, "inspect", str(new_file)], throwaway_database, tmp_path)
    new = json.loads(new_file.read_text())

    # Content types (and their permissions) of models added since that layout are new rows.
    new_types = {
        pk
        for pk, row in new["tables"]["django_content_type"].items()
        if (row["app_label"], row["model"]) in MODELS_ADDED_SINCE
    }
    type_of = {
        pk: (row["app_label"], row["model"])
        for pk, row in new["tables"]["django_content_type"].items()
    }
    new_permissions = {
        pk
        for pk, row in new["tables"]["auth_permission"].items()
        if str(row["content_type_id"]) in new_types
        or (type_of[str(row["content_type_id"])][0], row["codename"]) in PERMISSIONS_ADDED_SINCE
    }
    # Staff accounts of that layout were operators: they keep operating (tenants.0004 grants
    # them the operators' permission).
    operator_grants = {
        pk
        for pk, row in new["tables"]["auth_user_user_permissions"].items()
        if str(row["permission_id"]) in new_permissions
    }
    staff = {pk for pk, row in old["tables"]["auth_user"].items() if row["is_staff"] in (True, 1)}
    assert {
        str(new["tables"]["auth_user_user_permissions"][pk]["user_id"]) for pk in operator_grants
    } == staff
    added_since = {
        "django_content_type": new_types,
        "auth_permission": new_permissions,
        "auth_user_user_permissions": operator_grants,
    }

    # Every row of every table survived, with every value (ids and foreign keys included).
    for table, rows in old["tables"].items():
        if table in REPLACED_TABLES:
            assert table not in new["tables"]
            continue
        assert table in new["tables"], f"table {table} is gone"
        after = new["tables"][table]
        lost = rows.keys() - after.keys()
        added = after.keys() - rows.keys() - added_since.get(table, set())
        assert not lost, f"{table}: rows lost: {sorted(lost)}"
        assert not added, f"{table}: rows added: {[after[pk] for pk in sorted(added)][:5]}"
        for pk, row in rows.items():
            expected = _expected_after_migration(table, row)
            got = {column: after[pk].get(column) for column in expected}
            assert got == expected, f"{table} row {pk} changed"
    # Every old port is a port of its tenant's default network, bound to its instance, with
    # its MAC and its address.
    old_ports = {
        (str(p["instance_id"]), p["mac"], p["ip"]) for p in old["tables"]["compute_port"].values()
    }
    new_ports = new["tables"]["network_port"]
    new_addresses = {
        (
            str(new_ports[str(f["port_id"])]["device_id"]),
            new_ports[str(f["port_id"])]["mac"],
            f["ip"],
        )
        for f in new["tables"]["network_fixedip"].values()
    }
    assert new_addresses == old_ports
    assert {p["device_owner"] for p in new_ports.values()} == {"compute:instance"}
    defaults = [n for n in new["tables"]["network_network"].values() if n["is_default"]]
    assert len(defaults) == len(old["tables"]["compute_tenantnetwork"])

    # The relations now point at the models' new apps.
    assert new["relations"] == {"Instance.host": "hosts.Host", "Allocation.host": "hosts.Host"}
    placed = {ids["instances"][name] for name in ("web-1", "web-2", "resized", "db-1")}
    assert new["instance_hosts"] == dict.fromkeys(placed, "hv1")
    assert new["allocation_hosts"] == dict.fromkeys(placed, "hv1")
    host_row = new["tables"]["compute_host"][ids["host"]]
    assert (host_row["allocated_vcpus"], host_row["state"]) == (7, "maintenance")
    assert new["host"] == {
        "zone": "fr-par/fr-par-1",
        "pools": ["images", "instances", "volumes"],
        "orphans": [
            [
                "volume",
                "andromede-instances/0000-gone.qcow2",
                {"reason": "no instance", "seen": ["2026-11-27"], "size_bytes": 1073741824},
            ]
        ],
    }

    # The current selectors work on the migrated rows: each instance's address comes from
    # the port that names it by device_id.
    instances = ids["instances"]
    assert new["instance_list"] == {
        "acme": {
            instances["web-1"]: "192.0.2.2",
            instances["web-2"]: "192.0.2.3",
            instances["resized"]: "192.0.2.4",
            instances["failed"]: None,
        },
        "globex": {instances["db-1"]: "198.51.100.2"},
    }
    assert new["device_ports"] == {
        instances["web-1"]: "192.0.2.2",
        instances["web-2"]: "192.0.2.3",
        instances["resized"]: "192.0.2.4",
        instances["db-1"]: "198.51.100.2",
    }
    assert new["flavor_access"] == {"acme-gpu": ["acme"], "large": [], "retired": [], "small": []}
    assert new["flavor_list"] == {
        "acme": ["acme-gpu", "large", "small"],
        "globex": ["large", "small"],
    }
    assert new["image_list"] == {
        "acme": ["acme-golden", "debian-12", "web-1-snap"],
        "globex": ["broken-upload", "debian-12"],
    }
    images = new["tables"]["compute_image"]
    assert images[ids["images"]["debian-12"]]["checksum_sha256"] == "d" * 64
    assert images[ids["images"]["acme-golden"]]["checksum_sha256"] == "0123456789abcdef" * 4
    assert images[ids["images"]["web-1-snap"]]["source_instance_id"] == instances["web-1"]

    # Operations: the registry finds each action's handler and loads its target; the queued
    # one is still queued, the running one keeps its lease, the failed one its steps and error.
    ops = ids["operations"]
    assert new["operations"][ops["queued"]] == {
        "handler": "compute.worker.lifecycle.run_create",
        "target": instances["db-1"],
    }
    assert all(entry["handler"] for entry in new["operations"].values())
    assert sorted(new["operation_list"]["globex"]) == [ops["queued"]]
    rows = new["tables"]["compute_operation"]
    assert rows[ops["queued"]]["status"] == "queued"
    assert rows[ops["queued"]]["params"]["network"] == {"ip": "198.51.100.2"}
    assert rows[ops["running"]]["lease_owner"] == "worker@hv1:1234"
    assert rows[ops["running"]]["lease_expires_at"].startswith("2026-11-28T12:05:00")
    assert rows[ops["running"]]["steps"] == [{"name": "shutdown", "outcome": "ok", "seconds": 1.5}]
    assert rows[ops["failed"]]["error"] == "the guest did not come back in 30 s"
    assert rows[ops["failed"]]["steps"][0]["error"] == "timed out"

    # Content types moved with their models (same ids, so permissions and admin history
    # follow); none is left under compute for a moved model, none was added but those of the
    # models added since.
    old_ids = {
        (row["app_label"], row["model"]): int(pk)
        for pk, row in old["tables"]["django_content_type"].items()
    }
    content_types = {(app, model): pk for app, model, pk in new["content_types"]}
    for app_label, models in MOVED.items():
        for model in models:
            assert ("compute", model) not in content_types
            current = LEGACY_NETWORK_MODELS.get(model, model) if app_label == "network" else model
            assert content_types[(app_label, current)] == old_ids[("compute", model)]
    assert len(content_types) == len(old_ids) + len(MODELS_ADDED_SINCE)
    assert content_types.keys() >= MODELS_ADDED_SINCE
    moved_types = {
        pk
        for label, pk in new["content_type_for"].items()
        if tuple(label.lower().split(".")) not in MODELS_ADDED_SINCE
    }
    assert moved_types == {
        old_ids[("compute", model)]
        for app_label, models in MOVED.items()
        for model in models
        if not (app_label == "network" and model in LEGACY_NETWORK_MODELS)
    }
    assert new["log_entries"] == {str(ids["log_entry"]): {"model": "hosts.Host", "object": "hv1"}}
    assert new["permissions"]["operator"] == [
        "hosts.change_host",
        "hosts.view_host",
        "operations.view_operation",
        "tenants.operate_cloud",
    ]

    # The audit chain still verifies; a second migrate has nothing to do.
    assert new["audit"] == {"ok": True, "checked": 2, "reason": ""}
    assert "No migrations to apply." in new["migrate_again"]
    assert new["unapplied"] == []
