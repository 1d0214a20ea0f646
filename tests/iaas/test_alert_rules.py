"""The alert rules and the Grafana dashboard shipped for Prometheus
(ansible/roles/controlplane/files/prometheus): promtool loads the rules and passes their unit
tests, every dashboard query is valid PromQL, and every metric either names is one /metrics
exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.metrics_scrape import exported_names, scrape_text

PROMETHEUS = Path(__file__).resolve().parents[2] / "ansible/roles/controlplane/files/prometheus"
METRIC = re.compile(r"\bandromede_[a-z0-9_]+\b")


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_promtool_loads_the_alert_rules():
    assert "SUCCESS: 13 rules found" in promtool("check", "rules", "alerts.yml")


def test_the_alert_rules_pass_their_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_every_dashboard_query_is_valid_promql(tmp_path):
    exprs = dashboard_exprs()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(exprs)
    ]}]}  # fmt: skip
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in promtool(
        "check", "rules", "dashboard.yml", cwd=tmp_path
    )


@pytest.mark.django_db
def test_every_metric_the_alerts_and_the_dashboard_name_is_exported(make_caller):
    exported = exported_names(scrape_text(make_caller(None, operator=True)))
    for expr in alert_exprs() + dashboard_exprs():
        named = set(METRIC.findall(expr))
        assert named or expr.startswith("up{"), expr  # `up`: Prometheus' own, of the scrape
        assert named <= exported, (expr, named - exported)
