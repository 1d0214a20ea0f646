"""OpenAPI description of the API's bearer tokens (drf-spectacular extension, registered by
importing this module in TenantsConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer andr_<key id>_<secret>`.",
        }


class MfaSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.MfaSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A session from `auth/login` (with the second factor, once enrolled); "
            "writes need the CSRF token in `X-CSRFToken`.",
        }
