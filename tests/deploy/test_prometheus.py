"""deploy/prometheus and deploy/grafana: valid for promtool, and querying only metrics the app exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from studio import settings
from tests.support.services import require
from tests.support.deploy import AUTHORIZED, TOKEN, make_app, record_one_of_each

ROOT = settings.PROJECT_ROOT
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
SCRAPE = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
OPERATOR_RULES = yaml.safe_load((ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml").read_text())
POD_MONITORS = [yaml.safe_load(path.read_text())
                for path in sorted((ROOT / "deploy" / "k8s" / "monitoring").glob("podmonitor-*.yaml"))]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "photo-studio.json").read_text())
# Our metrics all start with studio_; recording-rule names would have a colon and are not ours to export.
METRIC_NAME = re.compile(r"\bstudio_[a-z0-9_]+\b")


def promtool(*arguments: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    """Run promtool (Debian's prometheus package; .ci/run installs it)."""
    executable = shutil.which("promtool")
    require(executable is not None, "promtool not installed (apt-get install prometheus)")
    return subprocess.run([executable, *arguments], cwd=cwd, capture_output=True, text=True, timeout=120)


def rule_expressions() -> list[str]:
    """Return the expression of every alert rule."""
    return [rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """Return every query of the dashboard: its panels' targets and its variables'."""
    queries = [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_promtool_accepts_the_scrape_configuration_and_its_rules(tmp_path) -> None:
    # As the Compose service lays it out: the token in a file next to the configuration.
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "metrics-token").write_text(TOKEN)

    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_not_before() -> None:
    result = promtool("test", "rules", "alerts.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_s_alerts_are_all_there() -> None:
    alerts = {rule["alert"] for group in ALERTS["groups"] for rule in group["rules"]}
    assert {"StudioQueueBacklogGrowing", "StudioTaskFailureRateHigh", "StudioNoWorkerAlive",
            "StudioWebhookDeliveriesFailing", "StudioDatabaseDown", "StudioRedisDown"} <= alerts
    growing = next(rule for group in ALERTS["groups"] for rule in group["rules"]
                   if rule["alert"] == "StudioQueueBacklogGrowing")
    assert growing["for"] == "10m"


def test_the_operator_s_rules_are_the_alert_rules_word_for_word() -> None:
    assert OPERATOR_RULES["kind"] == "PrometheusRule"
    assert OPERATOR_RULES["spec"] == ALERTS


def test_the_jobs_the_rules_name_are_the_jobs_prometheus_scrapes() -> None:
    named = set(re.findall(r'job="([^"]+)"', " ".join(rule_expressions())))
    compose_jobs = {job["job_name"] for job in SCRAPE["scrape_configs"]}
    operator_jobs = {relabeling["replacement"] for monitor in POD_MONITORS
                     for endpoint in monitor["spec"]["podMetricsEndpoints"]
                     for relabeling in endpoint["relabelings"] if relabeling["targetLabel"] == "job"}
    assert named and named <= compose_jobs == operator_jobs == {"studio-web", "studio-worker"}


@pytest.fixture
def exported_names(redis_connection, tmp_path) -> set[str]:
    """Return the name of every sample a scrape of the app returns once each metric has a value."""
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN).test_client()
    record_one_of_each()
    client.get("/livez")
    response = client.get("/metrics", headers=AUTHORIZED)
    assert response.status_code == 200
    return {sample.name for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def test_every_metric_the_alert_rules_use_is_exported(exported_names) -> None:
    used = {name for expression in rule_expressions() for name in METRIC_NAME.findall(expression)}

    assert len(used) >= 8
    assert used <= exported_names, sorted(used - exported_names)


def test_every_metric_the_dashboard_queries_is_exported(exported_names) -> None:
    used = {name for query in dashboard_queries() for name in METRIC_NAME.findall(query)}

    assert len(used) >= 12
    assert used <= exported_names, sorted(used - exported_names)


def test_the_dashboard_covers_throughput_latency_queue_and_failures_per_operation() -> None:
    rows = [panel["title"] for panel in DASHBOARD["panels"] if panel["type"] == "row"]
    assert rows == ["Throughput", "Latency", "Queue and workers", "Failures"]
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert "operation" in variables["operation"]["definition"]
    panels = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    per_operation = [panel["title"] for panel in panels
                     if any('operation=~"$operation"' in target["expr"] for target in panel["targets"])]
    assert len(per_operation) >= 6, per_operation
