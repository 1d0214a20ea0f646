"""A database of the previous layout, for tests/migrations/test_migrate_forward.py.

Run in a process of its own, with DATABASE_URL naming a throwaway database (never the test
database: migrating it to an old state would leave every later test with an old schema):

    python -m tests.support.migration_forward old <out.json>
        migrates an empty database to the last migrations of the old layout (every model in
        `compute`), creates what that version's `migrate` created (content types and
        permissions), populates it through the historical models of that state — never the
        current models — and writes every row of every table to <out.json>;
    python -m tests.support.migration_forward inspect <out.json>
        after the forward `manage.py migrate`: writes every row again, read through the
        current models, and what the current code makes of the data (selectors, the
        operation registry, permissions, the audit chain, a second `migrate`).

The test compares the two files.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: The last migrations of the layout with every model in `compute` (commit 3663224); the
#: contrib apps are taken at their leaves (their migrations did not change).
OLD_LAYOUT = [
    ("compute", "0011_orphan_volumes"),
    ("tenants", "0001_initial"),
    ("iaas", "0002_audit_append_only_trigger"),
]
CONTRIB_APPS = ("admin", "auth", "contenttypes", "sessions")
#: The apps that took models over from `compute`, and which ones.
MOVED = {
    "hosts": ["region", "zone", "host", "storagepool", "orphanreport"],
    "operations": ["operation"],
    "images": ["image"],
    "network": ["tenantnetwork", "port"],
}
#: When things happened, fixed so that they can be compared after the migration.
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def main(argv: list[str]) -> None:
    phase, out = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
    import django

    django.setup()
    result = build_old_database() if phase == "old" else inspect_migrated_database()
    from django.core.serializers.json import DjangoJSONEncoder

    Path(out).write_text(json.dumps(result, cls=DjangoJSONEncoder, indent=1, sort_keys=True))


# ---- The old layout ------------------------------------------------------------------------


def build_old_database() -> dict[str, Any]:
    from django.core.management.sql import emit_post_migrate_signal
    from django.db import connection, transaction
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.recorder import MigrationRecorder

    executor = MigrationExecutor(connection)
    targets = [*OLD_LAYOUT, *(executor.loader.graph.leaf_nodes(app)[0] for app in CONTRIB_APPS)]
    plan = executor.migration_plan(targets)
    executor.migrate(targets, plan=plan)
    applied = sorted(MigrationRecorder(connection).applied_migrations())
    executor.loader.build_graph()
    old_apps = executor.loader.project_state(targets).apps
    # What the old version's `migrate` did after its migrations: content types and default
    # permissions of its models (compute.host, compute.operation, …).
    emit_post_migrate_signal(0, False, connection.alias, apps=old_apps, plan=plan)
    with transaction.atomic():
        expected = populate(old_apps)
    return {
        "applied": applied,
        "models": sorted(model._meta.label for model in old_apps.get_models()),
        "tables": dump_tables(list(old_apps.get_models(include_auto_created=True))),
        "expected": expected,
    }


def populate(apps: Any) -> dict[str, Any]:
    """Rows of every kind through the historical models of the old layout; returns the ids
    (and a few values) the test looks for afterwards."""
    from django.contrib.auth.hashers import make_password

    from iaas.audit.chain import GENESIS_HASH, event_hash, hashed_fields

    def model(label: str) -> Any:
        return apps.get_model(*label.split("."))

    User = model("auth.User")
    Group = model("auth.Group")
    Permission = model("auth.Permission")
    ContentType = model("contenttypes.ContentType")
    LogEntry = model("admin.LogEntry")
    Session = model("sessions.Session")
    Tenant = model("tenants.Tenant")
    Membership = model("tenants.Membership")
    ApiToken = model("tenants.ApiToken")
    Quota = model("tenants.Quota")
    SignInAttempt = model("tenants.SignInAttempt")
    AuditEvent = model("iaas.AuditEvent")
    AuditChainHead = model("iaas.AuditChainHead")
    IdempotencyRecord = model("iaas.IdempotencyRecord")
    KeyPair = model("compute.KeyPair")
    Flavor = model("compute.Flavor")
    Region = model("compute.Region")
    Zone = model("compute.Zone")
    Host = model("compute.Host")
    StoragePool = model("compute.StoragePool")
    OrphanReport = model("compute.OrphanReport")
    Image = model("compute.Image")
    ServerGroup = model("compute.ServerGroup")
    TenantNetwork = model("compute.TenantNetwork")
    Instance = model("compute.Instance")
    Allocation = model("compute.Allocation")
    Port = model("compute.Port")
    Operation = model("compute.Operation")

    password = make_password("correct horse battery staple")
    operator = User.objects.create(
        username="operator", password=password, is_staff=True, is_superuser=False, email="op@x.fr"
    )
    alice = User.objects.create(username="alice", password=password, email="alice@acme.fr")
    bob = User.objects.create(username="bob", password=password)

    # Permissions on moved models, as the old admin gave them: by group and directly.
    host_ct = ContentType.objects.get(app_label="compute", model="host")
    operation_ct = ContentType.objects.get(app_label="compute", model="operation")
    host_admins = Group.objects.create(name="host-admins")
    host_admins.permissions.add(
        Permission.objects.get(content_type=host_ct, codename="change_host"),
        Permission.objects.get(content_type=host_ct, codename="view_host"),
    )
    operator.groups.add(host_admins)
    operator.user_permissions.add(
        Permission.objects.get(content_type=operation_ct, codename="view_operation")
    )

    acme = Tenant.objects.create(name="Acme", slug="acme", residency=["FR"])
    globex = Tenant.objects.create(
        name="Globex", slug="globex", status="suspended", residency=["FR", "DE"]
    )
    Membership.objects.create(user=alice, tenant=acme, role="admin")
    Membership.objects.create(user=bob, tenant=acme, role="reader")
    Membership.objects.create(user=bob, tenant=globex, role="member")
    ApiToken.objects.create(
        user=alice,
        tenant=acme,
        name="ci",
        role="member",
        key_id="k" * 24,
        secret_hash="a" * 64,
        expires_at=T0 + timedelta(days=90),
        last_used_at=T0,
        last_used_address="203.0.113.7",
    )
    ApiToken.objects.create(
        user=operator,
        tenant=None,
        name="ops",
        key_id="o" * 24,
        secret_hash="b" * 64,
        expires_at=T0 + timedelta(days=30),
        revoked_at=T0,
    )
    Quota.objects.create(tenant=acme, resource="instances", limit=20)
    SignInAttempt.objects.create(username="alice", source_address="203.0.113.7", succeeded=True)
    Session.objects.create(
        session_key="s" * 32, session_data="e30:placeholder", expire_date=T0 + timedelta(hours=8)
    )

    keypair = KeyPair.objects.create(
        tenant=acme,
        name="laptop",
        key_type="ssh-ed25519",
        public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOg laptop",
        fingerprint="SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        bits=256,
        created_by_id=alice.id,
    )
    small = Flavor.objects.create(name="small", vcpus=1, memory_mb=512, disk_gb=5)
    large = Flavor.objects.create(name="large", vcpus=4, memory_mb=4096, disk_gb=40)
    private = Flavor.objects.create(
        name="acme-gpu", vcpus=8, memory_mb=16384, disk_gb=80, is_public=False
    )
    private.access.add(acme)
    Flavor.objects.create(name="retired", vcpus=1, memory_mb=256, disk_gb=1, disabled=True)

    region = Region.objects.create(name="fr-par", description="Paris")
    zone = Zone.objects.create(
        region=region,
        name="fr-par-1",
        site="Opérateur, bâtiment A",
        city="Paris",
        country="FR",
        jurisdiction="FR",
        certifications=["SecNumCloud", "HDS"],
    )
    host = Host.objects.create(
        name="hv1",
        zone=zone,
        libvirt_uri="qemu+ssh://root@hv1/system",
        ssh_host="hv1.example",
        ssh_host_key_fingerprint="SHA256:hostkey",
        storage_root="/var/lib/andromede",
        domain_type="kvm",
        arch="x86_64",
        cpu_model="EPYC",
        cpus=64,
        memory_mb=262144,
        disk_gb=4000,
        libvirt_version="9.0.0",
        hypervisor_version="7.2.0",
        domain_types=["kvm", "qemu"],
        cpu_allocation_ratio=8.0,
        state="maintenance",
        state_reason="firmware update",
        last_heartbeat_at=T0,
        allocated_vcpus=1 + 1 + 4 + 1,
        allocated_memory_mb=512 + 512 + 4096 + 512,
        allocated_disk_gb=5 + 5 + 40 + 5,
    )
    for role in ("images", "instances", "volumes"):
        StoragePool.objects.create(
            host=host,
            role=role,
            name=f"andromede-{role}",
            path=f"/var/lib/andromede/{role}",
            capacity_bytes=4 * 10**12,
            available_bytes=3 * 10**12,
        )
    orphan = OrphanReport.objects.create(
        host=host,
        kind="volume",
        name="andromede-instances/0000-gone.qcow2",
        details={"size_bytes": 1073741824, "reason": "no instance", "seen": ["2026-11-27"]},
    )

    debian = Image.objects.create(
        tenant=None,
        name="debian-12",
        disk_format="qcow2",
        status="active",
        visibility="public",
        min_disk_gb=2,
        protected=True,
        size_bytes=350_000_000,
        virtual_size_bytes=2 * 1024**3,
        checksum_sha256="d" * 64,
    )
    golden = Image.objects.create(
        tenant=acme,
        name="acme-golden",
        disk_format="raw",
        status="active",
        size_bytes=1024**3,
        virtual_size_bytes=1024**3,
        checksum_sha256="0123456789abcdef" * 4,
        created_by_id=alice.id,
    )
    broken_upload = Image.objects.create(
        tenant=globex,
        name="broken-upload",
        disk_format="qcow2",
        status="error",
        error_message="not a qcow2 image",
    )

    web = ServerGroup.objects.create(tenant=acme, name="web", policy="anti-affinity")
    acme_net = TenantNetwork.objects.create(tenant=acme, cidr="192.0.2.0/24", next_host_index=5)
    globex_net = TenantNetwork.objects.create(tenant=globex, cidr="198.51.100.0/24")

    def instance(tenant: Any, name: str, flavor: Any, status: str, **fields: Any) -> Any:
        return Instance.objects.create(
            tenant=tenant,
            name=name,
            flavor=flavor,
            image_id=debian.id,
            status=status,
            vcpus=flavor.vcpus,
            memory_mb=flavor.memory_mb,
            disk_gb=flavor.disk_gb,
            **fields,
        )

    def place(inst: Any, network: Any, ip: str, mac: str) -> None:
        Allocation.objects.create(
            instance=inst,
            host=host,
            vcpus=inst.vcpus,
            memory_mb=inst.memory_mb,
            disk_gb=inst.disk_gb,
        )
        Port.objects.create(instance=inst, network=network, ip=ip, mac=mac)

    web1 = instance(
        acme,
        "web-1",
        small,
        "active",
        host=host,
        keypair=keypair,
        ssh_public_key=keypair.public_key,
        user_data="#cloud-config\npackages: [nginx]\n",
        power_state="running",
        server_group=web,
    )
    place(web1, acme_net, "192.0.2.2", "52:54:00:00:00:02")
    web2 = instance(
        acme,
        "web-2",
        small,
        "active",
        host=host,
        task_state="stopping",
        power_state="running",
        server_group=web,
    )
    place(web2, acme_net, "192.0.2.3", "52:54:00:00:00:03")
    resized = instance(
        acme,
        "resized",
        large,
        "verify_resize",
        host=host,
        previous_flavor=small,
        power_state="running",
    )
    place(resized, acme_net, "192.0.2.4", "52:54:00:00:00:04")
    building = instance(globex, "db-1", small, "building", host=host, task_state="spawning")
    place(building, globex_net, "198.51.100.2", "52:54:00:00:01:02")
    failed = instance(acme, "failed", small, "error", fault="no host has room")
    deleted = instance(acme, "gone", small, "deleted", deleted_at=T0, power_state="shutoff")
    snapshot = Image.objects.create(
        tenant=acme,
        name="web-1-snap",
        disk_format="qcow2",
        status="saving",
        source_instance_id=web1.id,
        created_by_id=alice.id,
    )

    queued = Operation.objects.create(
        tenant=globex,
        action="instance.create",
        target_type="instance",
        target_id=building.id,
        host_name=host.name,
        actor_id=bob.id,
        actor_label="bob",
        request_id="req-create",
        params={"image_id": str(debian.id), "user_data": "", "network": {"ip": "198.51.100.2"}},
        enqueued_at=T0,
    )
    running = Operation.objects.create(
        tenant=acme,
        action="instance.stop",
        target_type="instance",
        target_id=web2.id,
        host_name=host.name,
        actor_id=alice.id,
        actor_label="alice",
        params={"force": False},
        status="running",
        attempts=2,
        steps=[{"name": "shutdown", "outcome": "ok", "seconds": 1.5}],
        progress=50,
        lease_owner="worker@hv1:1234",
        lease_expires_at=T0 + timedelta(minutes=5),
        enqueued_at=T0,
        started_at=T0 + timedelta(seconds=1),
    )
    failed_op = Operation.objects.create(
        tenant=acme,
        action="instance.reboot",
        target_type="instance",
        target_id=web1.id,
        host_name=host.name,
        actor_label="alice",
        status="failed",
        attempts=1,
        steps=[
            {"name": "reboot", "outcome": "error", "seconds": 30.0, "error": "timed out"},
        ],
        progress=100,
        error="the guest did not come back in 30 s",
        enqueued_at=T0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=31),
    )
    Operation.objects.create(
        tenant=acme,
        action="instance.snapshot",
        target_type="instance",
        target_id=web1.id,
        host_name=host.name,
        params={"image_id": str(snapshot.id)},
        status="succeeded",
        finished_at=T0,
    )

    log_entry = LogEntry.objects.create(
        action_time=T0,
        user=operator,
        content_type=host_ct,
        object_id=str(host.id),
        object_repr=host.name,
        action_flag=2,
        change_message='[{"changed": {"fields": ["State"]}}]',
    )

    # A short audit chain, hashed as the unchanged iaas.audit.chain hashes it.
    head = AuditChainHead.objects.create(pk=1, last_hash=GENESIS_HASH)
    for action, target in [("host.state", host), ("instance.create", building)]:
        event = AuditEvent(
            created_at=T0,
            actor_label="operator",
            tenant_id=getattr(target, "tenant_id", None),
            action=action,
            target_type=target._meta.model_name,
            target_id=str(target.pk),
            target_label=target.name,
            outcome="success",
            details={"why": "test"},
            prev_hash=head.last_hash,
        )
        event.hash = event_hash(hashed_fields(event))
        event.save()
        head.last_event_id, head.last_hash = event.id, event.hash
        head.save()
    IdempotencyRecord.objects.create(
        scope=f"{acme.id}:{alice.id}",
        key="create-web-1",
        method="POST",
        path="/api/v1/instances",
        fingerprint="f" * 64,
        status_code=202,
        response_body={"id": str(web1.id)},
    )

    ids = {
        "tenants": {"acme": acme.id, "globex": globex.id},
        "users": {"operator": operator.id, "alice": alice.id, "bob": bob.id},
        "host": host.id,
        "orphan": orphan.id,
        "images": {i.name: i.id for i in (debian, golden, broken_upload, snapshot)},
        "instances": {i.name: i.id for i in (web1, web2, resized, building, failed, deleted)},
        "operations": {"queued": queued.id, "running": running.id, "failed": failed_op.id},
        "log_entry": log_entry.id,
    }
    return json.loads(json.dumps(ids, default=str))


def dump_tables(models: list[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of every table, by table and primary key."""
    return {
        model._meta.db_table: {
            str(row[model._meta.pk.attname]): row for row in model._default_manager.values()
        }
        for model in models
    }


# ---- After the forward migration, with the current code ------------------------------------


def inspect_migrated_database() -> dict[str, Any]:
    from django.apps import apps
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from compute import selectors as compute_selectors
    from compute.models import Allocation, Flavor, Instance
    from hosts.models import Host
    from iaas.audit.verify import verify_chain
    from images import selectors as image_selectors
    from network.models import Port
    from network.selectors import device_port, first_address
    from operations import registry
    from operations import selectors as operation_selectors
    from operations.models import Operation
    from tenants.models import Tenant

    tenants = list(Tenant.objects.order_by("slug"))

    def handler_of(operation: Operation) -> dict[str, str]:
        """The handler the registry finds for the operation's action, and the target it loads."""
        action = registry.find_action(operation.action)
        handler = action.handler if action is not None else None
        target = registry.target_type(operation.target_type).load(operation.target_id)
        return {
            "handler": f"{handler.__module__}.{handler.__qualname__}" if handler else "",
            "target": str(target.pk),
        }

    ports = {}
    for instance in Instance.objects.all():
        try:
            address = first_address(device_port(instance.pk))
            ports[str(instance.pk)] = address.ip if address else None
        except Port.DoesNotExist:
            continue

    again = io.StringIO()
    call_command("migrate", interactive=False, stdout=again)
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    User = get_user_model()
    report = verify_chain()
    host = Host.objects.get()

    return {
        "tables": dump_tables(list(apps.get_models(include_auto_created=True))),
        "relations": {
            "Instance.host": Instance._meta.get_field("host").related_model._meta.label,
            "Allocation.host": Allocation._meta.get_field("host").related_model._meta.label,
        },
        "instance_hosts": {
            str(i.pk): i.host.name for i in Instance.objects.select_related("host") if i.host
        },
        "allocation_hosts": {
            str(a.instance_id): a.host.name for a in Allocation.objects.select_related("host")
        },
        "instance_list": {
            # `ip` is the selector's annotation, which the type checker cannot see.
            t.slug: {str(i.pk): i.ip for i in compute_selectors.instance_list(t)}  # type: ignore[attr-defined]
            for t in tenants
        },
        "device_ports": ports,
        "flavor_access": {
            f.name: sorted(t.slug for t in f.access.all()) for f in Flavor.objects.all()
        },
        "flavor_list": {
            t.slug: sorted(f.name for f in compute_selectors.flavor_list(t)) for t in tenants
        },
        "image_list": {
            t.slug: sorted(i.name for i in image_selectors.image_list(t)) for t in tenants
        },
        "operation_list": {
            t.slug: sorted(str(o.pk) for o in operation_selectors.operation_list(t))
            for t in tenants
        },
        "operations": {str(o.pk): handler_of(o) for o in Operation.objects.all()},
        "host": {
            "zone": f"{host.zone.region.name}/{host.zone.name}",
            "pools": sorted(p.role for p in host.storage_pools.all()),
            "orphans": [[o.kind, o.name, o.details] for o in host.orphans.all()],
        },
        "content_types": sorted(
            [ct.app_label, ct.model, ct.pk] for ct in ContentType.objects.all()
        ),
        "content_type_for": {
            m._meta.label: ContentType.objects.get_for_model(m).pk
            for m in apps.get_models()
            if m._meta.app_label in MOVED
        },
        "log_entries": {str(e.pk): log_entry_target(e) for e in LogEntry.objects.all()},
        "permissions": {u.username: sorted(u.get_all_permissions()) for u in User.objects.all()},
        "audit": {"ok": report.ok, "checked": report.checked, "reason": report.reason},
        "migrate_again": again.getvalue(),
        "unapplied": [f"{m.app_label}.{m.name}" for m, _ in plan],
    }


def log_entry_target(entry: Any) -> dict[str, str]:
    """The model and the object an admin history entry points at, by its content type."""
    model = entry.content_type.model_class()
    if model is None:
        return {"model": f"{entry.content_type.app_label}.{entry.content_type.model} (none)"}
    return {"model": model._meta.label, "object": str(entry.get_edited_object())}


if __name__ == "__main__":
    main(sys.argv[1:])
