"""M7: API rate limits per token, per user, per anonymous address and on sign-in, counted in
Redis (the shared cache); a throttled request is `429 throttled` with `Retry-After`, in the
error shape, and changes nothing."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from compute.models import KeyPair
from tenants import services
from tenants.models import SignInAttempt
from tests.support.callers import SYSTEM

pytestmark = [pytest.mark.django_db]
UNLIMITED = {"token": None, "user": None, "anonymous": None, "signin": None}


@pytest.fixture(autouse=True)
def _empty_counters():
    cache.clear()
    yield
    cache.clear()


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "throttled"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"retry_after": retry_after}


def test_the_cache_is_redis(settings):
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")


def test_each_token_has_its_own_rate(settings, make_tenant, make_caller, ssh_public_keys):
    settings.API_THROTTLE_RATES = {**UNLIMITED, "token": "3/m"}
    caller = make_caller(make_tenant("acme"))
    client = caller.client()
    for _ in range(3):
        assert client.get("/api/v1/keypairs").status_code == 200
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert_throttled(client.post("/api/v1/keypairs", body, format="json"))
    assert not KeyPair.objects.exists()
    _, other = services.token_create(
        actor=SYSTEM, user=caller.user, tenant=caller.tenant, name="second", session_passed_mfa=True
    )
    second = Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert second.get("/api/v1/keypairs").status_code == 200


def test_a_users_tokens_share_its_rate(settings, make_tenant, make_caller):
    settings.API_THROTTLE_RATES = {**UNLIMITED, "user": "4/m"}
    caller = make_caller(make_tenant("acme"))
    _, other = services.token_create(
        actor=SYSTEM, user=caller.user, tenant=caller.tenant, name="second", session_passed_mfa=True
    )
    first, second = caller.client(), Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    answers = [c.get("/api/v1/keypairs").status_code for c in (first, second, first, second)]
    assert answers == [200] * 4
    assert_throttled(second.get("/api/v1/keypairs"))
    someone_else = make_caller(caller.tenant)
    assert someone_else.client().get("/api/v1/keypairs").status_code == 200


def test_anonymous_callers_are_limited_per_address(settings):
    settings.API_THROTTLE_RATES = {**UNLIMITED, "anonymous": "2/m"}
    anonymous = Client(REMOTE_ADDR="192.0.2.20")
    assert anonymous.get("/api/v1/").status_code == 200
    assert anonymous.get("/api/v1/").status_code == 200
    assert_throttled(anonymous.get("/api/v1/"))
    assert Client(REMOTE_ADDR="192.0.2.21").get("/api/v1/").status_code == 200


def test_sign_in_is_limited_per_address_before_any_password_is_checked(
    settings, make_tenant, make_caller
):
    settings.API_THROTTLE_RATES = {**UNLIMITED, "signin": "2/m"}
    username = make_caller(make_tenant("acme")).user.username
    client = Client(REMOTE_ADDR="192.0.2.30")
    body = {"username": username, "password": "wrong-wrong-wrong"}
    for _ in range(2):
        response = client.post("/api/v1/auth/login", body, content_type="application/json")
        assert response.status_code == 401
    assert_throttled(client.post("/api/v1/auth/login", body, content_type="application/json"))
    assert SignInAttempt.objects.count() == 2


def test_an_account_holds_a_bounded_number_of_live_tokens(settings, make_tenant, make_caller):
    settings.TOKEN_MAX_PER_USER = 3
    caller = make_caller(make_tenant("acme"))  # holds one token already
    client = caller.client()
    assert client.post("/api/v1/tokens", {"name": "a"}, format="json").status_code == 201
    second = client.post("/api/v1/tokens", {"name": "b"}, format="json")
    assert second.status_code == 201
    refused = client.post("/api/v1/tokens", {"name": "c"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "too_many_tokens"
    assert caller.user.api_tokens.count() == 3
    assert client.delete(f"/api/v1/tokens/{second.json()['id']}").status_code == 204
    assert client.post("/api/v1/tokens", {"name": "c"}, format="json").status_code == 201


def test_with_the_cache_down_requests_are_served_not_refused(
    settings, make_tenant, make_caller, caplog
):
    """Found running bench/api.py without Redis: every API request was a 500. Rate limits
    protect the service; with their counters unreachable the request is served and the
    operator warned."""
    settings.API_THROTTLE_RATES = {**UNLIMITED, "token": "3/m", "user": "3/m"}
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "unix:///nonexistent/redis.sock",
            "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        }
    }
    caller = make_caller(make_tenant("acme"))

    with override_settings(CACHES=unreachable):
        answers = [caller.client().get("/api/v1/keypairs").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert "rate limits not counted" in caplog.text
