"""Checks the Grafana dashboard and the alert rules against the metrics the code declares.

Every `simrenew_…` name in a panel query or an alert expression must be a metric that
src/business_metrics.rs declares or one of actix-web-prom's HTTP metrics; a histogram
may be queried through its `_bucket`, `_count` and `_sum` series. Panels need an id, a
title and at least one query; ids are unique.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTTP_METRICS = {"simrenew_http_requests_total", "simrenew_http_requests_duration_seconds"}
NAME = re.compile(r"\bsimrenew_[a-z0-9_]+\b")


def declared() -> set[str]:
    source = (ROOT / "src" / "business_metrics.rs").read_text()
    return set(re.findall(r'"(simrenew_[a-z0-9_]+)"', source)) | HTTP_METRICS


def unknown(expr: str, known: set[str]) -> list[str]:
    missing = []
    for name in NAME.findall(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in known and base not in known:
            missing.append(name)
    return missing


def main() -> int:
    known = declared()
    problems = []
    dashboard = json.loads((ROOT / "deploy/grafana/simrenew-dashboard.json").read_text())
    ids = [panel.get("id") for panel in dashboard["panels"]]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids must be present and unique: {ids}")
    queried = set()
    for panel in dashboard["panels"]:
        if not panel.get("title") or not panel.get("targets"):
            problems.append(f"panel {panel.get('id')} needs a title and a query")
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            queried.update(NAME.findall(expr))
            for name in unknown(expr, known):
                problems.append(f"panel '{panel.get('title')}' queries undeclared {name}")
    rules = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    for name in unknown(rules, known):
        problems.append(f"alerts.yml uses undeclared {name}")
    unshown = {m for m in known if not any(q.startswith(m) for q in queried)}
    if unshown:
        problems.append(f"declared but on no panel: {sorted(unshown)}")
    for problem in problems:
        print(f"dashboard check: {problem}", file=sys.stderr)
    if not problems:
        print(f"dashboard check: {len(dashboard['panels'])} panels, {len(known)} metrics, all known")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
