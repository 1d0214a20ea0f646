"""`/metrics` in Prometheus' text format (issue 13).

What each app knows it exports itself: its `AppConfig.ready()` registers a collector here
(`register_collector`), as apps fill the operation pipeline's action registry, so this package
imports no app (DESIGN §1). The request metrics (`requests`) are this package's own; who may
scrape is decided by `access` (an internal address, and a caller check tenants registers).
"""

from iaas.metrics.access import register_caller_check
from iaas.metrics.registry import register_collector

__all__ = ["register_caller_check", "register_collector"]
