"""The OVN northbound driver's costs against a private NB ovsdb-server (no Django).

    .venv/bin/python bench/ovn_nb.py              # 1,000 ports
    .venv/bin/python bench/ovn_nb.py --ports 300

Prints: connect time; ensure_switch_port for new ports (p50/p95, early and late, to see
whether the table's size matters) against ovsdbapp's raw `lsp_add` + `lsp_set_*` on the same
kind of NB; a second, no-op ensure; ensure_port_group with 20 rules (create, no-op, one rule
changed); and with ovn-northd, a rule change until the southbound has it (`wait_sb`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypervisor.ovn import (
    AclRuleSpec,
    DhcpSpec,
    Northbound,
    PortGroupSpec,
    SwitchPortSpec,
    SwitchSpec,
    port_group_name,
)
from tests.support.ovn_central import OvnCentral

DHCP = DhcpSpec("10.0.0.0/16", "10.0.0.1", "0a:00:00:00:00:01", ("198.51.100.53",))


def ms(seconds: list[float]) -> str:
    values = sorted(seconds)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"p50 {statistics.median(values) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def port(switch: str, n: int, groups: tuple[str, ...] = ()) -> SwitchPortSpec:
    ip = f"10.0.{n // 250}.{n % 250 + 2}"
    mac = f"0a:00:00:00:{n // 256:02x}:{n % 256:02x}"
    return SwitchPortSpec(str(uuid.uuid4()), switch, mac, (ip,), dhcp=DHCP, port_groups=groups)


def rules(n: int, first_port: int = 1000) -> tuple[AclRuleSpec, ...]:
    return tuple(
        AclRuleSpec("ingress", protocol="tcp", port_min=first_port + i, remote_cidr="0.0.0.0/0")
        for i in range(n)
    )


def bench_driver(central: OvnCentral, ports: int) -> None:
    connects = []
    for _ in range(5):
        start = time.perf_counter()
        Northbound(central.nb_remote, owner="bench-connect").close()
        connects.append(time.perf_counter() - start)
    print(f"connect (schema + full dump, empty NB)        {ms(connects)}")
    nb = Northbound(central.nb_remote, owner="bench")
    switch = str(uuid.uuid4())
    nb.ensure_switch(SwitchSpec(switch))
    group = port_group_name(str(uuid.uuid4()))
    nb.ensure_port_group(PortGroupSpec(group, (), rules(2)))
    specs = [port(switch, n, (group,)) for n in range(ports)]
    times = [timed(lambda s=s: nb.ensure_switch_port(s)) for s in specs]  # type: ignore[misc]
    tenth = max(1, ports // 10)
    print(f"ensure_switch_port, new, first {tenth:<5}        {ms(times[:tenth])}")
    print(f"ensure_switch_port, new, last {tenth:<5}         {ms(times[-tenth:])}")
    again = [timed(lambda s=s: nb.ensure_switch_port(s)) for s in specs[:200]]  # type: ignore[misc]
    print(f"ensure_switch_port, unchanged                 {ms(again)}")
    connect = timed(lambda: Northbound(central.nb_remote, owner="bench-connect").close())
    print(f"connect with {ports} ports in the NB           {connect * 1000:6.2f} ms")
    members = tuple(s.name for s in specs[:50])
    creates, noops, changes = [], [], []
    for _ in range(10):
        spec = PortGroupSpec(port_group_name(str(uuid.uuid4())), members, rules(20))
        changed = PortGroupSpec(spec.name, members, rules(19) + rules(1, 9000))
        creates.append(timed(lambda spec=spec: nb.ensure_port_group(spec)))  # type: ignore[misc]
        noops.append(timed(lambda spec=spec: nb.ensure_port_group(spec)))  # type: ignore[misc]
        changes.append(timed(lambda c=changed: nb.ensure_port_group(c)))  # type: ignore[misc]
    print(f"ensure_port_group, 20 rules, 50 ports, create {ms(creates)}")
    print(f"ensure_port_group, 20 rules, unchanged        {ms(noops)}")
    print(f"ensure_port_group, 20 rules, one changed      {ms(changes)}")
    inventory = timed(nb.inventory)
    print(f"inventory() of {ports} ports                  {inventory * 1000:6.2f} ms")
    nb.close()


def bench_raw(central: OvnCentral, ports: int) -> None:
    """The same port creation with ovsdbapp's own commands (no comparison, no ownership)."""
    from ovsdbapp.backend.ovs_idl import connection
    from ovsdbapp.schema.ovn_northbound import impl_idl

    idl = connection.OvsdbIdl.from_server(central.nb_remote, "OVN_Northbound")
    api = impl_idl.OvnNbApiIdlImpl(connection.Connection(idl=idl, timeout=10))
    switch = str(uuid.uuid4())
    api.ls_add(switch).execute(check_error=True)
    dhcp = api.dhcp_options_add("10.0.0.0/16", lease_time="3600").execute(check_error=True)
    times = []
    for n in range(ports):
        spec = port(switch, n)
        address = spec.addresses()[0]

        def create(spec: SwitchPortSpec = spec, address: str = address) -> None:
            with api.transaction(check_error=True) as txn:
                txn.add(api.lsp_add(switch, spec.name, addresses=[address]))
                txn.add(api.lsp_set_port_security(spec.name, [address]))
                txn.add(api.lsp_set_dhcpv4_options(spec.name, dhcp.uuid))

        times.append(timed(create))
    tenth = max(1, ports // 10)
    print(f"raw ovsdbapp lsp_add, first {tenth:<5}           {ms(times[:tenth])}")
    print(f"raw ovsdbapp lsp_add, last {tenth:<5}            {ms(times[-tenth:])}")
    api.ovsdb_connection.stop()


def bench_northd(ports: int) -> None:
    with OvnCentral(northd=True) as central:
        nb = Northbound(central.nb_remote, owner="bench")
        switch = str(uuid.uuid4())
        nb.ensure_switch(SwitchSpec(switch))
        group = port_group_name(str(uuid.uuid4()))
        nb.ensure_port_group(PortGroupSpec(group, (), rules(20)))
        specs = [port(switch, n, (group,)) for n in range(min(ports, 200))]
        for spec in specs:
            nb.ensure_switch_port(spec)
        members = tuple(s.name for s in specs)
        nb.wait_sb()
        times = []
        for i in range(10):
            changed = PortGroupSpec(group, members, rules(19) + rules(1, 9000 + i))
            start = time.perf_counter()
            nb.ensure_port_group(changed)
            nb.wait_sb()
            times.append(time.perf_counter() - start)
        print(f"rule change → in the SB (northd, {len(specs)} ports)  {ms(times)}")
        nb.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    args = parser.parse_args()
    with OvnCentral() as central:
        bench_driver(central, args.ports)
    with OvnCentral() as central:
        bench_raw(central, args.ports)
    bench_northd(args.ports)


if __name__ == "__main__":
    main()
