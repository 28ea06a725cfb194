"""CSV exports of the reports (same figures as the pages and the API)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def campaign_csv(summary: dict, timeline: dict, domains: list[dict]) -> str:
    rows: list[list[Any]] = [
        ["delivered", summary["delivered"]], ["failed", summary["failed"]], ["in_doubt", summary["in_doubt"]],
        ["opens_unique", summary["opens"]["unique"]], ["opens_total", summary["opens"]["total"]],
        ["opens_human", summary["opens"]["human"]], ["opens_machine", summary["opens"]["machine"]],
        ["reads_glanced", summary["reads"]["glanced"]], ["reads_skimmed", summary["reads"]["skimmed"]],
        ["reads_read", summary["reads"]["read"]], ["reads_not_measurable", summary["reads"]["not_measurable"]],
        ["reads_avg_seconds", summary["reads"]["avg_seconds"]],
        ["clicks_unique", summary["clicks"]["unique"]], ["clicks_total", summary["clicks"]["total"]],
        ["clicks_human", summary["clicks"]["human"]], ["clicks_machine", summary["clicks"]["machine"]],
        ["open_rate_percent", summary["open_rate"]], ["ctr_percent", summary["ctr"]],
        ["click_to_open_percent", summary["click_to_open"]], ["unsubscribes", summary["unsubscribes"]],
        *[[f"bounces_{name}", n] for name, n in summary["bounces"].items()],
        ["complaints", summary["complaints"]],
    ]
    rows += [[f"opens_at {label}", n] for label, n in zip(timeline["labels"], timeline["opens"], strict=True)]
    rows += [[f"clicks_at {label}", n] for label, n in zip(timeline["labels"], timeline["clicks"], strict=True)]
    rows += [[f"domain {d['domain']} delivered/opens/clicks", f"{d['delivered']}/{d['opens']}/{d['clicks']}"]
             for d in domains]
    return _csv(["figure", "value"], rows)


def clickmap_csv(data: dict) -> str:
    return _csv(["version", "link_index", "url", "unique_clicks", "clicks", "machine_clicks", "percent"],
                ([data["version"], link["index"], link["url"], link["unique_clicks"], link["clicks"],
                  link["machine_clicks"], link["percent"]] for link in data["links"]))


def cohorts_csv(data: dict) -> str:
    header = ["cohort", "size"] + [f"{data['period']}_{k}_percent" for k in data["columns"]] \
        + [f"{data['period']}_{k}_count" for k in data["columns"]]
    return _csv(header, ([row["cohort"], row["size"], *row["shares"], *row["counts"]] for row in data["rows"]))


def engagement_csv(data: dict) -> str:
    return _csv([data["period"], "new", "unsubscribes", "bounces", "complaints", "net"],
                ([label, data["new"][i], data["unsubscribes"][i], data["bounces"][i], data["complaints"][i],
                  data["net"][i]] for i, label in enumerate(data["labels"])))
