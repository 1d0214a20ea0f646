"""The operations API through the generic cases (tests/support/api_cases.py): a tenant reads
its own operations, never another tenant's."""

from __future__ import annotations

from operations.models import Operation
from tests.support.api_cases import TenantDetailCases, TenantListCases


class TestOperations(TenantListCases, TenantDetailCases):
    url = "/api/v1/operations"
    model = Operation
    kind = "operation"
