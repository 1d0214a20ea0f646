"""The portal's network pages (networks and subnets, routers, security groups, floating IPs):
what a signed-in tenant user sees and can do, with the API's rules — another tenant's object
is a 404, a reader sees no write button and is refused (403) if it posts anyway, a refusal
of the service is shown in the user's words and changes nothing.

No OVN here (the fast lane): network changes are sent to the control workers when the
request's transaction commits, which a test's transaction never does (as in
tests/network/test_networks_api.py); resources stay `building`."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from iaas.models import AuditEvent
from network.models import (
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from network.services import floating_ips as floating_services
from network.services import routers as router_services
from network.services import security_groups as group_services
from network.services.networks import network_create, provider_network_create
from network.services.ports import PortRequest, port_create
from network.services.subnets import subnet_create
from tenants.models import Role, Tenant
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db


def browser(caller: Any, language: str = "en") -> Client:
    client = Client()
    client.force_login(caller.user)
    client.cookies["andromede_language"] = language
    return client


@pytest.fixture
def site(make_tenant: Callable[..., Tenant], make_caller: Callable[..., Any]) -> SimpleNamespace:
    """Tenants acme (a member and a reader, as browsers in English) and globex (a member)."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    member, reader = make_caller(acme, Role.MEMBER), make_caller(acme, Role.READER)
    other = make_caller(globex, Role.MEMBER)
    return SimpleNamespace(
        acme=acme, globex=globex, member=browser(member), reader=browser(reader),
        other=browser(other), member_name=member.user.username,
    )  # fmt: skip


@pytest.fixture
def external(db: None) -> Network:
    """The operators' external network `public` with the pool 203.0.113.130-.140."""
    network = provider_network_create(actor=SYSTEM, name="public", physical_network="physnet1")
    subnet_create(
        actor=SYSTEM, tenant=None, network=network, cidr="203.0.113.128/25",
        gateway_ip="203.0.113.129",
        allocation_pools=[{"start": "203.0.113.130", "end": "203.0.113.140"}],
    )  # fmt: skip
    return network


def a_network(tenant: Tenant, name: str = "app", cidr: str = "192.0.2.0/24") -> Network:
    network = network_create(actor=SYSTEM, tenant=tenant, name=name)
    subnet_create(actor=SYSTEM, tenant=tenant, network=network, cidr=cidr)
    return network


def text(response: Any) -> str:
    return response.content.decode()


def audited(tenant: Tenant, action: str, who: str) -> bool:
    return AuditEvent.objects.filter(tenant_id=tenant.pk, action=action, actor_label=who).exists()


# ---- networks and subnets ------------------------------------------------------------------


def test_the_list_shows_the_tenants_networks_and_the_operators_not_another_tenants(site, external):
    a_network(site.acme, "app", "192.0.2.0/24")
    a_network(site.globex, "secret-globex", "198.51.100.0/24")

    page = site.member.get("/t/acme/networks/")

    assert page.status_code == 200
    body = text(page)
    assert "app" in body
    assert "192.0.2.0/24" in body
    assert "public" in body
    assert "operator (external)" in body
    assert "secret-globex" not in body
    assert 'class="badge badge-busy">building<' in body


def test_a_member_creates_a_network_with_its_first_subnet(site):
    answer = site.member.post(
        "/t/acme/networks/new/",
        {"name": "web", "cidr": "192.0.2.0/24", "dns_nameservers": "198.51.100.53, 9.9.9.9",
         "enable_dhcp": "on"},
    )  # fmt: skip

    network = Network.objects.get(tenant=site.acme, name="web")
    assert answer.status_code == 302
    assert answer["Location"] == f"/t/acme/networks/{network.pk}/"
    subnet = network.subnets.get()
    assert (subnet.cidr, subnet.gateway_ip, subnet.enable_dhcp) == (
        "192.0.2.0/24",
        "192.0.2.1",
        True,
    )
    assert subnet.dns_nameservers == ["198.51.100.53", "9.9.9.9"]
    assert audited(site.acme, "network.create", site.member_name)
    assert audited(site.acme, "subnet.create", site.member_name)
    detail = text(site.member.get(answer["Location"]))
    assert "192.0.2.0/24" in detail
    assert "0 of 253" in detail


def test_a_refused_first_subnet_leaves_no_network_and_says_why(site):
    answer = site.member.post(
        "/t/acme/networks/new/", {"name": "web", "cidr": "192.0.2.0/24", "gateway_ip": "10.9.9.9"}
    )

    assert answer.status_code == 400
    assert "The gateway must be an address inside the subnet" in text(answer)
    assert not Network.objects.filter(tenant=site.acme).exists()


def test_a_refusal_speaks_french_by_default(site, make_caller):
    french = browser(make_caller(site.acme, Role.MEMBER), language="fr")

    answer = french.post("/t/acme/networks/new/", {"name": "pas un nom!"})

    assert answer.status_code == 400
    assert not Network.objects.filter(tenant=site.acme).exists()
    assert "Ce nom n&#x27;est pas valide" in text(answer)
    assert "Créer le réseau" in text(answer)


def test_the_detail_shows_subnets_and_ports_with_addresses_and_devices(site, external):
    network = a_network(site.acme, "app", "192.0.2.0/24")
    subnet = network.subnets.get()
    router = router_services.router_create(actor=SYSTEM, tenant=site.acme, name="edge")
    router_services.router_add_interface(actor=SYSTEM, router=router, subnet=subnet)
    port_create(actor=SYSTEM, tenant=site.acme, request=PortRequest(network=network, name="spare"))
    # globex's port on the shared external network is none of acme's business.
    floating_services.floating_ip_create(actor=SYSTEM, tenant=site.globex, network=external)

    body = text(site.member.get(f"/t/acme/networks/{network.pk}/"))

    assert "192.0.2.1" in body  # the router's interface holds the gateway address
    assert f'href="/t/acme/routers/{router.pk}/">edge</a>' in body
    assert "spare" in body
    assert "192.0.2.2" in body
    assert "1 of 253" not in body
    assert "2 of 253" in body
    public = text(site.member.get(f"/t/acme/networks/{external.pk}/"))
    assert "203.0.113.130" not in public
    assert "No port of yours on this network." in public
    assert "Delete the network" not in public  # an operator's network is not the tenant's


def test_another_tenants_network_and_subnet_are_not_found(site):
    network = a_network(site.acme)
    subnet = network.subnets.get()
    urls = [
        f"/t/globex/networks/{network.pk}/",
        f"/t/globex/networks/{network.pk}/delete/",
        f"/t/globex/networks/{network.pk}/subnets/new/",
        f"/t/globex/networks/{network.pk}/subnets/{subnet.pk}/delete/",
    ]
    for url in urls:
        assert site.other.get(url).status_code == 404, url
    for url in urls[1:]:  # the detail page only reads (a POST there is 405, whoever asks)
        assert site.other.post(url, {"cidr": "192.0.2.0/24"}).status_code == 404, url
    assert site.other.get("/t/acme/networks/").status_code == 404
    assert Network.objects.filter(pk=network.pk).exists()
    assert Subnet.objects.filter(pk=subnet.pk).exists()


def test_a_reader_sees_no_write_buttons_and_is_refused(site):
    network = a_network(site.acme)
    subnet = network.subnets.get()

    listing = text(site.reader.get("/t/acme/networks/"))
    detail = text(site.reader.get(f"/t/acme/networks/{network.pk}/"))

    assert "Create a network" not in listing
    assert "Delete the network" not in detail
    assert "Add a subnet" not in detail
    assert "/delete/" not in detail
    for url, data in [
        ("/t/acme/networks/new/", {"name": "x"}),
        (f"/t/acme/networks/{network.pk}/delete/", {}),
        (f"/t/acme/networks/{network.pk}/subnets/new/", {"cidr": "198.51.100.0/24"}),
        (f"/t/acme/networks/{network.pk}/subnets/{subnet.pk}/delete/", {}),
    ]:
        assert site.reader.post(url, data).status_code == 403, url
    assert Network.objects.count() == 1
    assert Subnet.objects.count() == 1


def test_a_network_with_ports_is_not_deleted_and_an_empty_one_is(site):
    network = a_network(site.acme)
    port = port_create(actor=SYSTEM, tenant=site.acme, request=PortRequest(network=network))

    confirm = text(site.member.get(f"/t/acme/networks/{network.pk}/delete/"))
    refused = site.member.post(f"/t/acme/networks/{network.pk}/delete/", follow=True)

    assert "1 port still uses this network" in confirm
    assert "Ports still use this network" in text(refused)
    assert Network.objects.filter(pk=network.pk).exists()

    Port.objects.filter(pk=port.pk).delete()
    done = site.member.post(f"/t/acme/networks/{network.pk}/delete/")

    assert done.status_code == 302
    assert done["Location"] == "/t/acme/networks/"
    assert not Network.objects.filter(pk=network.pk).exists()
    assert not Subnet.objects.filter(network_id=network.pk).exists()
    assert audited(site.acme, "network.delete", site.member_name)


def test_a_subnet_is_added_and_deleted_and_an_overlap_is_refused(site):
    network = a_network(site.acme, cidr="192.0.2.0/24")

    overlap = site.member.post(
        f"/t/acme/networks/{network.pk}/subnets/new/", {"cidr": "192.0.2.128/25"}
    )
    added = site.member.post(
        f"/t/acme/networks/{network.pk}/subnets/new/",
        {"cidr": "198.51.100.0/24", "no_gateway": "on", "subnet_name": "storage"},
    )

    assert overlap.status_code == 400
    assert "overlaps a subnet" in text(overlap)
    assert added.status_code == 302
    subnet = network.subnets.get(cidr="198.51.100.0/24")
    assert subnet.gateway_ip is None
    assert subnet.name == "storage"
    assert not subnet.enable_dhcp
    assert (
        site.member.get(f"/t/acme/networks/{network.pk}/subnets/{subnet.pk}/delete/").status_code
        == 200
    )

    site.member.post(f"/t/acme/networks/{network.pk}/subnets/{subnet.pk}/delete/")

    assert list(network.subnets.values_list("cidr", flat=True)) == ["192.0.2.0/24"]
    assert audited(site.acme, "subnet.delete", site.member_name)


def test_an_operators_network_cannot_be_deleted_from_the_portal(site, external):
    answer = site.member.post(f"/t/acme/networks/{external.pk}/delete/", follow=True)

    assert "belongs to the operator" in text(answer)
    assert Network.objects.filter(pk=external.pk).exists()


# ---- routers --------------------------------------------------------------------------------


def test_a_member_creates_a_router_with_a_gateway_and_adds_and_removes_an_interface(site, external):
    subnet = a_network(site.acme).subnets.get()

    created = site.member.post(
        "/t/acme/routers/new/", {"name": "edge", "external_network": str(external.pk),
                                 "enable_snat": "on"},
    )  # fmt: skip
    router = Router.objects.get(tenant=site.acme, name="edge")
    detail = text(site.member.get(created["Location"]))
    added = site.member.post(
        f"/t/acme/routers/{router.pk}/interfaces/add/", {"subnet": str(subnet.pk)}
    )

    assert router.external_network == external
    assert router.enable_snat
    assert "203.0.113.130" in detail  # the gateway's address, from the pool
    assert added.status_code == 302
    assert "192.0.2.1" in text(site.member.get(f"/t/acme/routers/{router.pk}/"))
    assert audited(site.acme, "router.add_interface", site.member_name)

    twice = site.member.post(
        f"/t/acme/routers/{router.pk}/interfaces/add/", {"subnet": str(subnet.pk)}, follow=True
    )
    assert "already joined to a router" in text(twice)

    site.member.post(f"/t/acme/routers/{router.pk}/interfaces/{subnet.pk}/remove/")

    assert not Port.objects.filter(
        device_id=router.pk, device_owner=Port.Owner.ROUTER_INTERFACE
    ).exists()
    assert audited(site.acme, "router.remove_interface", site.member_name)


def test_the_gateway_is_cleared_and_set_again(site, external):
    router = router_services.router_create(
        actor=SYSTEM, tenant=site.acme, name="edge", external_network=external
    )

    site.member.post(f"/t/acme/routers/{router.pk}/gateway/", {"external_network": ""})
    router.refresh_from_db()
    assert router.external_network is None
    assert not Port.objects.filter(
        device_id=router.pk, device_owner=Port.Owner.ROUTER_GATEWAY
    ).exists()

    site.member.post(
        f"/t/acme/routers/{router.pk}/gateway/", {"external_network": str(external.pk)}
    )
    router.refresh_from_db()
    assert router.external_network == external
    assert audited(site.acme, "router.update", site.member_name)


def test_a_router_with_interfaces_is_not_deleted_and_an_empty_one_is(site):
    subnet = a_network(site.acme).subnets.get()
    router = router_services.router_create(actor=SYSTEM, tenant=site.acme, name="edge")
    router_services.router_add_interface(actor=SYSTEM, router=router, subnet=subnet)

    assert "still has 1 interface" in text(site.member.get(f"/t/acme/routers/{router.pk}/delete/"))
    refused = site.member.post(f"/t/acme/routers/{router.pk}/delete/", follow=True)
    assert "This router is still in use" in text(refused)
    assert Router.objects.filter(pk=router.pk).exists()

    router_services.router_remove_interface(actor=SYSTEM, router=router, subnet=subnet)
    done = site.member.post(f"/t/acme/routers/{router.pk}/delete/")

    assert done["Location"] == "/t/acme/routers/"
    assert not Router.objects.filter(pk=router.pk).exists()


def test_routers_of_another_tenant_are_not_found_nor_their_subnets_usable(site):
    theirs = router_services.router_create(actor=SYSTEM, tenant=site.globex, name="theirs")
    their_subnet = a_network(site.globex).subnets.get()
    mine = router_services.router_create(actor=SYSTEM, tenant=site.acme, name="mine")

    for url in [f"/t/acme/routers/{theirs.pk}/", f"/t/acme/routers/{theirs.pk}/delete/"]:
        assert site.member.get(url).status_code == 404
    assert site.member.post(f"/t/acme/routers/{theirs.pk}/delete/").status_code == 404
    assert "theirs" not in text(site.member.get("/t/acme/routers/"))
    foreign = site.member.post(
        f"/t/acme/routers/{mine.pk}/interfaces/add/", {"subnet": str(their_subnet.pk)}
    )
    assert foreign.status_code == 404
    assert Router.objects.filter(pk=theirs.pk).exists()
    assert not Port.objects.filter(device_id=mine.pk).exists()


def test_a_reader_cannot_change_routers(site, external):
    subnet = a_network(site.acme).subnets.get()
    router = router_services.router_create(actor=SYSTEM, tenant=site.acme, name="edge")

    detail = text(site.reader.get(f"/t/acme/routers/{router.pk}/"))

    assert "Delete the router" not in detail
    assert "Add the interface" not in detail
    assert "Set the gateway" not in detail
    assert "Create a router" not in text(site.reader.get("/t/acme/routers/"))
    for url, data in [
        ("/t/acme/routers/new/", {"name": "x"}),
        (f"/t/acme/routers/{router.pk}/interfaces/add/", {"subnet": str(subnet.pk)}),
        (f"/t/acme/routers/{router.pk}/gateway/", {"external_network": str(external.pk)}),
        (f"/t/acme/routers/{router.pk}/delete/", {}),
    ]:
        assert site.reader.post(url, data).status_code == 403, url
    router.refresh_from_db()
    assert router.external_network is None
    assert Router.objects.count() == 1
    assert not Port.objects.filter(device_id=router.pk).exists()


# ---- security groups ------------------------------------------------------------------------


def test_a_member_creates_a_group_and_adds_and_deletes_a_rule(site):
    created = site.member.post(
        "/t/acme/security-groups/new/", {"name": "web", "description": "HTTP"}
    )
    group = SecurityGroup.objects.get(tenant=site.acme, name="web")
    assert created["Location"] == f"/t/acme/security-groups/{group.pk}/"

    added = site.member.post(
        f"/t/acme/security-groups/{group.pk}/rules/new/",
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "22",
         "port_range_max": "22", "remote_ip_prefix": "203.0.113.0/24"},
    )  # fmt: skip

    assert added.status_code == 302
    rule = group.rules.get(direction="ingress")
    assert (rule.protocol, rule.port_range_min, rule.port_range_max, rule.remote_ip_prefix) == (
        "tcp", 22, 22, "203.0.113.0/24"
    )  # fmt: skip
    assert audited(site.acme, "security_group_rule.create", site.member_name)
    detail = text(site.member.get(f"/t/acme/security-groups/{group.pk}/"))
    assert "TCP" in detail
    assert "203.0.113.0/24" in detail

    confirm = site.member.get(f"/t/acme/security-groups/{group.pk}/rules/{rule.pk}/delete/")
    site.member.post(f"/t/acme/security-groups/{group.pk}/rules/{rule.pk}/delete/")

    assert confirm.status_code == 200
    assert "203.0.113.0/24" in text(confirm)
    assert not SecurityGroupRule.objects.filter(pk=rule.pk).exists()
    assert audited(site.acme, "security_group_rule.delete", site.member_name)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"protocol": "", "port_range_min": "22"}, "Ports apply to TCP and UDP only"),
        ({"protocol": "tcp", "port_range_min": "90", "port_range_max": "80"}, "below the first"),
        ({"protocol": "tcp", "remote_ip_prefix": "not-a-range"}, "not an address range"),
        ({"protocol": "number"}, "Give the IP protocol number"),
        ({"protocol": "tcp", "ethertype": "IPv6"}, "This rule is not valid"),  # the service's
    ],
)
def test_a_bad_rule_is_refused_with_a_reason_and_changes_nothing(site, data, says):
    group = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    before = SecurityGroupRule.objects.count()

    answer = site.member.post(
        f"/t/acme/security-groups/{group.pk}/rules/new/",
        {"direction": "ingress", "ethertype": "IPv4", **data},
    )

    assert answer.status_code == 400
    assert says in text(answer)
    assert SecurityGroupRule.objects.count() == before


def test_a_duplicate_rule_is_refused(site):
    group = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    rule = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}
    site.member.post(f"/t/acme/security-groups/{group.pk}/rules/new/", rule)

    again = site.member.post(f"/t/acme/security-groups/{group.pk}/rules/new/", rule)

    assert again.status_code == 400
    assert "already exists" in text(again)
    assert group.rules.filter(protocol="icmp").count() == 1


def test_the_default_group_cannot_be_deleted_and_another_can(site):
    web = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    default = SecurityGroup.objects.get(tenant=site.acme, is_default=True)

    listing = text(site.member.get("/t/acme/security-groups/"))
    detail = text(site.member.get(f"/t/acme/security-groups/{default.pk}/"))
    refused = site.member.post(f"/t/acme/security-groups/{default.pk}/delete/", follow=True)

    assert "(default)" in listing
    assert "web" in listing
    assert "Delete the security group" not in detail
    assert "cannot be deleted" in detail
    assert "The default security group cannot be deleted." in text(refused)
    assert SecurityGroup.objects.filter(pk=default.pk).exists()

    done = site.member.post(f"/t/acme/security-groups/{web.pk}/delete/")

    assert done["Location"] == "/t/acme/security-groups/"
    assert not SecurityGroup.objects.filter(pk=web.pk).exists()
    assert audited(site.acme, "security_group.delete", site.member_name)


def test_a_remote_group_of_another_tenant_cannot_be_named(site):
    mine = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    theirs = group_services.security_group_create(actor=SYSTEM, tenant=site.globex, name="db")
    before = SecurityGroupRule.objects.count()

    answer = site.member.post(
        f"/t/acme/security-groups/{mine.pk}/rules/new/",
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
         "remote_group": str(theirs.pk)},
    )  # fmt: skip

    assert answer.status_code == 400  # not among the choices offered
    assert SecurityGroupRule.objects.count() == before


def test_groups_and_rules_of_another_tenant_are_not_found(site):
    theirs = group_services.security_group_create(
        actor=SYSTEM, tenant=site.globex, name="globex-db"
    )
    rule = theirs.rules.first()
    assert rule is not None
    mine = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")

    assert "globex-db" not in text(site.member.get("/t/acme/security-groups/"))
    assert site.member.get(f"/t/acme/security-groups/{theirs.pk}/").status_code == 404
    for url in [
        f"/t/acme/security-groups/{theirs.pk}/delete/",
        f"/t/acme/security-groups/{theirs.pk}/rules/new/",
        f"/t/acme/security-groups/{theirs.pk}/rules/{rule.pk}/delete/",
        f"/t/acme/security-groups/{mine.pk}/rules/{rule.pk}/delete/",
    ]:
        assert site.member.get(url).status_code == 404, url
        assert site.member.post(url, {"direction": "ingress"}).status_code == 404, url
    assert SecurityGroup.objects.filter(pk=theirs.pk).exists()
    assert SecurityGroupRule.objects.filter(pk=rule.pk).exists()


def test_a_reader_cannot_change_security_groups(site):
    group = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    rule = group.rules.get()
    before = (SecurityGroup.objects.count(), SecurityGroupRule.objects.count())

    detail = text(site.reader.get(f"/t/acme/security-groups/{group.pk}/"))

    assert "Add a rule" not in detail
    assert "Delete the security group" not in detail
    assert "/delete/" not in detail
    for url, data in [
        ("/t/acme/security-groups/new/", {"name": "x"}),
        (f"/t/acme/security-groups/{group.pk}/delete/", {}),
        (f"/t/acme/security-groups/{group.pk}/rules/new/", {"direction": "ingress",
                                                             "protocol": "tcp"}),
        (f"/t/acme/security-groups/{group.pk}/rules/{rule.pk}/delete/", {}),
    ]:  # fmt: skip
        assert site.reader.post(url, data).status_code == 403, url
    assert (SecurityGroup.objects.count(), SecurityGroupRule.objects.count()) == before


# ---- floating IPs ---------------------------------------------------------------------------


@pytest.fixture
def reachable(site: SimpleNamespace, external: Network) -> SimpleNamespace:
    """acme's port 192.0.2.2 on `app`, joined to `public` by acme's router `edge`."""
    network = a_network(site.acme, "app", "192.0.2.0/24")
    router = router_services.router_create(
        actor=SYSTEM, tenant=site.acme, name="edge", external_network=external
    )
    router_services.router_add_interface(actor=SYSTEM, router=router, subnet=network.subnets.get())
    port = port_create(
        actor=SYSTEM, tenant=site.acme, request=PortRequest(network=network, name="vm")
    )
    return SimpleNamespace(network=network, router=router, port=port)


def test_a_member_allocates_associates_disassociates_and_releases_a_floating_ip(
    site, external, reachable
):
    allocated = site.member.post(
        "/t/acme/floating-ips/new/", {"network": str(external.pk), "description": "web"}
    )
    floating = FloatingIP.objects.get(tenant=site.acme)
    assert allocated["Location"] == f"/t/acme/floating-ips/{floating.pk}/"
    assert audited(site.acme, "floating_ip.create", site.member_name)
    detail = text(site.member.get(allocated["Location"]))
    assert floating.address in detail
    assert "vm — 192.0.2.2 (app)" in detail

    site.member.post(
        f"/t/acme/floating-ips/{floating.pk}/associate/", {"port": str(reachable.port.pk)}
    )
    floating.refresh_from_db()
    assert (floating.port_id, floating.fixed_ip, floating.router_id) == (
        reachable.port.pk, "192.0.2.2", reachable.router.pk
    )  # fmt: skip
    listing = text(site.member.get("/t/acme/floating-ips/"))
    assert floating.address in listing
    assert "192.0.2.2" in listing

    site.member.post(f"/t/acme/floating-ips/{floating.pk}/disassociate/")
    floating.refresh_from_db()
    assert floating.port_id is None
    assert audited(site.acme, "floating_ip.update", site.member_name)

    confirm = site.member.get(f"/t/acme/floating-ips/{floating.pk}/delete/")
    released = site.member.post(f"/t/acme/floating-ips/{floating.pk}/delete/")

    assert confirm.status_code == 200
    assert floating.address in text(confirm)
    assert released["Location"] == "/t/acme/floating-ips/"
    assert not FloatingIP.objects.filter(pk=floating.pk).exists()
    assert audited(site.acme, "floating_ip.delete", site.member_name)


def test_an_association_without_a_router_is_refused_with_what_to_do(site, external):
    network = a_network(site.acme, "lonely", "192.0.2.0/24")
    port = port_create(actor=SYSTEM, tenant=site.acme, request=PortRequest(network=network))
    floating = floating_services.floating_ip_create(
        actor=SYSTEM, tenant=site.acme, network=external
    )

    answer = site.member.post(
        f"/t/acme/floating-ips/{floating.pk}/associate/", {"port": str(port.pk)}, follow=True
    )

    assert "No router of yours joins" in text(answer)
    floating.refresh_from_db()
    assert floating.port_id is None


def test_floating_ips_and_ports_of_another_tenant_are_not_found(site, external, reachable):
    theirs = floating_services.floating_ip_create(
        actor=SYSTEM, tenant=site.globex, network=external
    )
    mine = floating_services.floating_ip_create(actor=SYSTEM, tenant=site.acme, network=external)
    their_port = port_create(
        actor=SYSTEM, tenant=site.globex, request=PortRequest(network=a_network(site.globex))
    )

    assert theirs.address not in text(site.member.get("/t/acme/floating-ips/"))
    for url in [
        f"/t/acme/floating-ips/{theirs.pk}/",
        f"/t/acme/floating-ips/{theirs.pk}/delete/",
    ]:
        assert site.member.get(url).status_code == 404, url
    for url in ["delete", "associate", "disassociate"]:
        answer = site.member.post(
            f"/t/acme/floating-ips/{theirs.pk}/{url}/", {"port": str(reachable.port.pk)}
        )
        assert answer.status_code == 404, url
    foreign_port = site.member.post(
        f"/t/acme/floating-ips/{mine.pk}/associate/", {"port": str(their_port.pk)}
    )
    assert foreign_port.status_code == 404
    offered = text(site.other.get(f"/t/globex/floating-ips/{theirs.pk}/"))
    assert "free port — 192.0.2.2 (app)" in offered  # globex's own port
    assert "vm — " not in offered  # never acme's
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.port_id is None
    assert mine.port_id is None


def test_a_reader_cannot_change_floating_ips(site, external, reachable):
    floating = floating_services.floating_ip_create(
        actor=SYSTEM, tenant=site.acme, network=external
    )

    detail = text(site.reader.get(f"/t/acme/floating-ips/{floating.pk}/"))

    assert "Release" not in detail
    assert "Associate" not in detail
    assert "Allocate a floating IP" not in text(site.reader.get("/t/acme/floating-ips/"))
    for url, data in [
        ("/t/acme/floating-ips/new/", {"network": str(external.pk)}),
        (f"/t/acme/floating-ips/{floating.pk}/associate/", {"port": str(reachable.port.pk)}),
        (f"/t/acme/floating-ips/{floating.pk}/disassociate/", {}),
        (f"/t/acme/floating-ips/{floating.pk}/delete/", {}),
    ]:
        assert site.reader.post(url, data).status_code == 403, url
    floating.refresh_from_db()
    assert floating.port_id is None
    assert FloatingIP.objects.count() == 1


def test_the_side_menu_lists_the_network_areas(site):
    body = text(site.member.get("/t/acme/"))

    for url, label in [
        ("/t/acme/networks/", "Networks"),
        ("/t/acme/routers/", "Routers"),
        ("/t/acme/security-groups/", "Security groups"),
        ("/t/acme/floating-ips/", "Floating IPs"),
    ]:
        assert f'<a href="{url}">{label}</a>' in body


def test_an_instances_port_is_named_by_its_instance_and_takes_a_floating_ip(cloud, external):
    """An instance made with no network gets the default network, and with an external
    network there, the default router: its address can take a floating IP at once."""
    from tests import factories

    instance, _ = factories.instance(cloud.tenant, flavor=cloud.flavor, image=cloud.image)
    port = Port.objects.get(device_id=instance.pk)
    address = port.fixed_ips.get().ip
    floating = floating_services.floating_ip_create(
        actor=SYSTEM, tenant=cloud.tenant, network=external
    )
    member = browser(cloud.member)

    network_page = text(member.get(f"/t/acme/networks/{port.network_id}/"))
    offered = text(member.get(f"/t/acme/floating-ips/{floating.pk}/"))
    member.post(f"/t/acme/floating-ips/{floating.pk}/associate/", {"port": str(port.pk)})

    assert "instance web-1" in network_page
    assert f"instance web-1 — {address} (" in offered
    floating.refresh_from_db()
    assert floating.port_id == port.pk
    assert f"instance web-1 · <code>{address}</code>" in text(member.get("/t/acme/floating-ips/"))


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_network_page_answers_in_both_languages(site, external, reachable, language):
    group = group_services.security_group_create(actor=SYSTEM, tenant=site.acme, name="web")
    floating = floating_services.floating_ip_create(
        actor=SYSTEM, tenant=site.acme, network=external
    )
    subnet = reachable.network.subnets.get()
    client = site.member
    client.cookies["andromede_language"] = language
    net, router, rule = reachable.network.pk, reachable.router.pk, group.rules.get().pk
    pages = [
        "networks/", "networks/new/", f"networks/{net}/", f"networks/{net}/delete/",
        f"networks/{net}/subnets/new/", f"networks/{net}/subnets/{subnet.pk}/delete/",
        "routers/", "routers/new/", f"routers/{router}/", f"routers/{router}/delete/",
        "security-groups/", "security-groups/new/", f"security-groups/{group.pk}/",
        f"security-groups/{group.pk}/delete/", f"security-groups/{group.pk}/rules/new/",
        f"security-groups/{group.pk}/rules/{rule}/delete/",
        "floating-ips/", "floating-ips/new/", f"floating-ips/{floating.pk}/",
        f"floating-ips/{floating.pk}/delete/",
    ]  # fmt: skip
    for page in pages:
        answer = client.get(f"/t/acme/{page}")
        assert answer.status_code == 200, page
        assert f'<html lang="{language}">' in text(answer), page
        assert text(answer).count("<h1") == 1, page
