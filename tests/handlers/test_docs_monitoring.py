"""docs/operations.md "Monitoring": its Prometheus rules are valid YAML in Prometheus's rule-file
shape, and every secbus metric and label they use is one a real broker's /metrics serves."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from support.broker import wait_until
from support.events import make_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
PROMETHEUS_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def rules() -> list[dict]:
    section = DOC.read_text(encoding="utf-8").split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return yaml.safe_load(textwrap.dedent(block))["groups"][0]["rules"]


def scrape(broker) -> dict[str, set[str]]:
    """Metric family name -> the label names its samples carry."""
    status, body = broker.get("/metrics")
    assert status == 200, body
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(k for k in sample.labels if not k.startswith("otel_"))
    return out


def test_the_rules_have_prometheus_rule_file_shape():
    found = rules()
    assert len(found) >= 8
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Secbus[A-Za-z]+", rule["alert"]) and rule["expr"].strip() and rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == rule["expr"].count("}")
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule


def test_every_metric_and_label_the_rules_use_is_served_by_a_real_broker(broker):
    stats = make_event("perf.sdk.stats", attrs={"queued": 0, "spooled": 5, "dropped": 1})
    with broker.client() as client:
        ack = client.publish([make_event(), stats, make_event(trace_id="NOT-HEX")])
    assert ack["accepted"] == 2 and [code for _i, code, *_ in ack["rejected"]] == ["invalid"]
    wanted = {name for rule in rules() for name in re.findall(r"\bsecbus_[a-z_]+", rule["expr"])}

    def all_served():
        got = scrape(broker)
        return got if wanted <= set(got) else None
    served = wait_until(all_served, 20, message=lambda: f"{sorted(wanted - set(scrape(broker)))} in /metrics")
    for rule in rules():
        names = re.findall(r"\bsecbus_[a-z_]+", rule["expr"])
        labels = set().union(*(served[name] for name in names)) | PROMETHEUS_LABELS if names else PROMETHEUS_LABELS
        used = set(re.findall(r"\$labels\.(\w+)", rule["annotations"]["summary"]))
        used |= set(re.findall(r"\{([a-z_]+)[!=~]", rule["expr"]))
        assert used <= labels, (rule["alert"], used - labels)
