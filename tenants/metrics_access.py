"""Who may scrape /metrics (iaas/metrics/access.py asks this after the peer address): the
bearer of an operator token whose account is still an operator. Sessions do not count: a
scraper presents a token, and a browser's cookie should not open the figures of the cloud."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from tenants.authentication import BearerTokenAuthentication
from tenants.models import ApiToken
from tenants.operators import is_operator


def operator_token_bearer(request: HttpRequest) -> bool:
    drf_request = Request(request, authenticators=[BearerTokenAuthentication()])
    try:
        user, token = drf_request.user, drf_request.auth
    except APIException:  # a malformed, revoked or expired token: no, and nothing more said
        return False
    return isinstance(token, ApiToken) and token.is_operator_token and is_operator(user)
