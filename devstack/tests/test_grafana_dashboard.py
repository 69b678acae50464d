"""docker/grafana/dashboards/patient-management.json: a dashboard Grafana imports, whose every query names
metrics that the services really export (their names are read from the code that defines them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "patient-management.json"
# Counter("name", ...), Histogram(...), Gauge(...) and GaugeMetricFamily(...) in the services and the kit.
DEFINITION = re.compile(r"\b(Counter|Histogram|Gauge|GaugeMetricFamily)\(\s*\"([a-z_:][a-z0-9_:]*)\"")
SUFFIXES = {
    "Counter": ("_total",),
    "Histogram": ("_count", "_sum", "_bucket"),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
}
PROMQL_WORDS = {"sum", "by", "rate", "irate", "increase", "histogram_quantile", "le", "max", "min", "avg", "without"}


def exported_metrics() -> set[str]:
    """Every sample name the code defines (a counter's _total, a histogram's _count/_sum/_bucket)."""
    names: set[str] = set()
    sources = [*ROOT.glob("*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    for source in sources:
        for kind, name in DEFINITION.findall(source.read_text()):
            names |= {name + suffix for suffix in SUFFIXES[kind]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression (identifiers that are not functions, keywords or labels)."""
    without_labels = re.sub(r"\{[^}]*\}|\bby \([^)]*\)|\[[^\]]*\]", " ", expr)
    identifiers = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels))
    return {name for name in identifiers if name not in PROMQL_WORDS and not re.fullmatch(r"\d.*", name)}


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["title"]
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"]
            assert target["datasource"]["type"] == "prometheus"


def test_every_query_names_exported_metrics_and_every_family_is_shown() -> None:
    exported = exported_metrics()
    assert "http_server_request_duration_seconds_count" in exported  # the reader works
    shown: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= exported, f"{panel['title']}: {sorted(names - exported)} not exported"
            shown |= names
    families = {re.sub(r"_(total|count|sum|bucket)$", "", name) for name in exported}
    missing = {f for f in families if not any(name.startswith(f) for name in shown)} - {"db_pool_size"}
    assert not missing, f"no panel for {sorted(missing)}"
