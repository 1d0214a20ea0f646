"""The NB database down or hung during a port create (issue 10, "Done means"): the API
still answers (the change is queued), the convergence fails within its bound with a
`TransientError`, the task's retries end with the port `error` and a fault the tenant can
read, and once the NB is back one reconciler pass makes the port active."""

from __future__ import annotations

import time

import pytest

from hypervisor.base import TransientError
from network import tasks
from network.models import Port
from network.services import convergence, realise
from tests.network import nb_view
from tests.network.queued import queued
from tests.network.test_convergence import network_with_subnet

pytestmark = pytest.mark.django_db

#: The NB bound of these tests (settings.OVN_TIMEOUT_SECONDS), in seconds.
BOUND = 1
#: What the bound may be exceeded by: the IDL's thread and the test's own work.
SLACK = 1.5
#: OVS's reconnect backoff (8 s at most) and a pass.
RECONNECT_BOUND = 12


def timed(fn, *args):
    start = time.monotonic()
    try:
        fn(*args)
    except TransientError as exc:
        return time.monotonic() - start, exc
    raise AssertionError(f"{fn.__name__} did not fail")


def reconcile_until_it_reaches_the_nb() -> tuple[convergence.Drift, int, float]:
    """The beat's reconciler passes, until one reaches the NB again: after the server came
    back, the worker's connection reconnects with OVS's backoff (up to 8 s: longer than
    this test's 1 s bound, shorter than the default 10 s one)."""
    start = time.monotonic()
    passes = 0
    while True:
        passes += 1
        try:
            return convergence.reconcile(), passes, time.monotonic() - start
        except TransientError:
            if time.monotonic() - start > RECONNECT_BOUND:
                raise


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_a_port_created_while_the_nb_is_down_ends_in_error_then_active(
    net, private_ovn, settings, fault
):
    central = private_ovn.central
    network, _ = network_with_subnet(net.client)  # converged while the NB is up
    settings.OVN_TIMEOUT_SECONDS = BOUND
    from network import northbound

    northbound.close_all()  # the worker's connection, opened again with the short bound
    convergence.converge_network(network["id"])
    (central.stop_nb if fault == "stopped" else central.freeze_nb)()
    try:
        with queued() as sent:
            created = net.client.post("/api/v1/ports", {"network": network["id"]}, format="json")
        assert created.status_code == 201, created.json()
        port = created.json()
        assert sent[-1] == (realise.PORT, (port["id"],))  # queued for the control worker

        took, error = timed(convergence.converge_port, port["id"])
        print(f"\nconverge_port with the NB {fault}: TransientError after {took:.2f} s")
        assert took < BOUND + SLACK, error

        # The task itself, with Celery's retry machinery (eager: no countdown between tries).
        start = time.monotonic()
        result = tasks.converge_port.apply(args=(port["id"],))
        took = time.monotonic() - start
        print(f"the task's {tasks.RETRIES + 1} tries took {took:.2f} s")
        assert result.state == "FAILURE"
        assert isinstance(result.result, TransientError)
        assert took < (tasks.RETRIES + 1) * (BOUND + SLACK)
        shown = net.client.get(f"/api/v1/ports/{port['id']}").json()
        assert shown["status"] == "error"
        assert shown["fault"].startswith("The network service could not apply this change yet")
        assert "retried automatically" in shown["fault"]
    finally:
        if fault == "stopped":
            central.start_nb()
        else:
            central.thaw_nb()

    drift, passes, took = reconcile_until_it_reaches_the_nb()
    print(f"NB back: the reconciler reached it after {took:.2f} s ({passes} pass(es))")
    assert f"port {port['id']}" in drift.missing
    assert nb_view.port_names(central, network["id"]) == {port["id"]}
    shown = net.client.get(f"/api/v1/ports/{port['id']}").json()
    assert (shown["status"], shown["fault"]) == ("active", "")
    assert Port.objects.get(pk=port["id"]).status == "active"
