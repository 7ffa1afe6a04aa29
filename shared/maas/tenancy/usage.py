"""``maas tenants usage``: a tenant's metering records over a date range, totals per model and day, and
the estimated cost here, on a SageMaker real-time endpoint and on SageMaker Serverless Inference.

The aggregation reads the metering objects (``maas.tenancy.metering``) from S3, listing only the
tenant's partitions for the days asked: the same records an Athena table over ``metering/`` queries::

    CREATE EXTERNAL TABLE maas_metering (time string, tenant string, model string, version int,
      rows bigint, status int, duration_ms double, billed_ms bigint, memory_mb int, gb_s double,
      request_id string)
    PARTITIONED BY (source string, tenant_p string, dt string)   -- tenant=..., see the key layout
    ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://<audit bucket>/metering/';

Prices (``PRICES``): AWS list prices, us-east-1, on-demand, x86, as published in 2025; free tiers are
ignored. Check https://aws.amazon.com/lambda/pricing/, /api-gateway/pricing/, /s3/pricing/ and
/sagemaker/pricing/ before quoting a figure; change the table, not the code.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from maas.tenancy.metering import PREFIX, SOURCES
from maas.tenancy.names import validate_tenant

PRICES: dict[str, float] = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_s": 0.0000166667,  # per GB-second, x86
    "apigw_rest_request": 3.50 / 1e6,  # REST API, first 333 M requests a month
    "s3_put": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,  # GET and others
    "sagemaker_realtime_hour": 0.115,  # ml.m5.large real-time inference instance-hour
    "sagemaker_serverless_gb_s": 0.0000200,  # Serverless Inference compute per GB-second (1-6 GB)
    "sagemaker_data_gb": 0.016,  # Serverless Inference data processed in + out, per GB
}

# S3 requests a unit of work makes, beyond the model (cached in the execution environment):
# a dropped file = GET input + PUT output + PUT report + PUT metering (amortised: 1 per file); a
# queue message = none (SQS and metering amortised); an HTTP request = none.
S3_REQUESTS = {"http": (0, 0), "file": (3, 1), "message": (0, 0)}  # (PUTs, GETs)
BYTES_PER_ROW = 400  # ~100 float features as JSON in, a few classes out (SageMaker data processing)

ASSUMPTIONS = (
    "Prices: us-east-1 on-demand list prices (2025), no free tier, no savings plans; see PRICES.",
    "Lambda cost = invocations x request price + measured billed GB-s x GB-s price; init phases "
    "(billed once per cold start) are not in the records.",
    "API Gateway: one REST request per HTTP record; files and messages do not use the API.",
    "S3: a dropped file costs 3 PUTs + 1 GET (input read, output, report, metering); HTTP and queue "
    "work reads models from the execution environment's cache.",
    "SageMaker real-time: one ml.m5.large instance running every hour of the period "
    "(always on, the minimum for an endpoint), enough for this load; no autoscaling above one.",
    "SageMaker Serverless: 1 GB memory, the same billed duration per request as measured on Lambda, "
    f"{BYTES_PER_ROW} bytes per row of data processed; cold starts not billed extra.",
)


@dataclass
class Totals:
    requests: int = 0
    files: int = 0
    messages: int = 0
    rows: int = 0
    billed_ms: int = 0
    gb_s: float = 0.0

    def add(self, rec: dict[str, Any]) -> None:
        source = rec.get("source")
        if source == "http":
            self.requests += 1
        elif source == "file":
            self.files += 1
        elif source == "message":
            self.messages += 1
        self.rows += int(rec.get("rows") or 0)
        self.billed_ms += int(rec.get("billed_ms") or 0)
        self.gb_s += float(rec.get("gb_s") or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "files": self.files,
            "messages": self.messages,
            "rows": self.rows,
            "billed_ms": self.billed_ms,
            "gb_s": round(self.gb_s, 6),
        }


@dataclass
class Usage:
    tenant: str
    start: dt.date
    end: dt.date
    total: Totals = field(default_factory=Totals)
    by_model_day: dict[tuple[str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))

    def cost(self) -> dict[str, float]:
        t, p = self.total, PRICES
        units = t.requests + t.files + t.messages
        puts = t.files * S3_REQUESTS["file"][0]
        gets = t.files * S3_REQUESTS["file"][1]
        lambda_cost = units * p["lambda_request"] + t.gb_s * p["lambda_gb_s"]
        apigw = t.requests * p["apigw_rest_request"]
        s3 = puts * p["s3_put"] + gets * p["s3_get"]
        hours = ((self.end - self.start).days + 1) * 24
        serverless = t.billed_ms / 1000.0 * p["sagemaker_serverless_gb_s"] + (
            t.rows * BYTES_PER_ROW / 1e9 * p["sagemaker_data_gb"]
        )
        return {
            "lambda": lambda_cost,
            "api_gateway": apigw,
            "s3": s3,
            "maas_total": lambda_cost + apigw + s3,
            "sagemaker_realtime": hours * p["sagemaker_realtime_hour"],
            "sagemaker_serverless": serverless,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "total": self.total.to_dict(),
            "by_model_day": [
                {"model": model, "day": day, **totals.to_dict()}
                for (model, day), totals in sorted(self.by_model_day.items())
            ],
            "estimated_cost_usd": {k: round(v, 8) for k, v in self.cost().items()},
            "prices": PRICES,
            "assumptions": list(ASSUMPTIONS),
        }


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    if (end - start).days > 366:
        raise ValueError("ask for at most 366 days at a time")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def aggregate(s3: Any, bucket: str, tenant: str, start: dt.date, end: dt.date) -> Usage:
    """Totals from the tenant's metering objects, day partitions ``start``..``end`` inclusive (UTC)."""
    validate_tenant(tenant)
    usage = Usage(tenant, start, end)
    paginator = s3.get_paginator("list_objects_v2")
    for day in days(start, end):
        for source in SOURCES:
            prefix = f"{PREFIX}source={source}/tenant={tenant}/dt={day.isoformat()}/"
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    for line in body.splitlines():
                        if not line.strip():
                            continue
                        rec = orjson.loads(line)
                        if rec.get("tenant") != tenant:
                            continue
                        usage.total.add(rec)
                        usage.by_model_day[(str(rec.get("model")), day.isoformat())].add(rec)
    return usage


def render(usage: Usage) -> str:
    """The human-readable report."""
    d = usage.to_dict()
    t = d["total"]
    lines = [
        f"tenant {usage.tenant}: {d['from']} .. {d['to']} (UTC)",
        f"  requests {t['requests']}  files {t['files']}  messages {t['messages']}  rows {t['rows']}  "
        f"GB-s {t['gb_s']:.3f}",
        "",
        f"  {'model':<40} {'day':<10} {'requests':>9} {'files':>6} {'messages':>9} {'rows':>10} {'GB-s':>10}",
    ]
    for row in d["by_model_day"]:
        lines.append(
            f"  {row['model']:<40} {row['day']:<10} {row['requests']:>9} {row['files']:>6} "
            f"{row['messages']:>9} {row['rows']:>10} {row['gb_s']:>10.3f}"
        )
    cost = d["estimated_cost_usd"]
    lines += [
        "",
        "  estimated cost (USD)",
        f"    maas on Lambda     {cost['maas_total']:>12.6f}  (Lambda {cost['lambda']:.6f}, "
        f"API Gateway {cost['api_gateway']:.6f}, S3 {cost['s3']:.6f})",
        f"    SageMaker real-time {cost['sagemaker_realtime']:>11.6f}",
        f"    SageMaker Serverless {cost['sagemaker_serverless']:>10.6f}",
        "",
        "  assumptions:",
        *[f"    - {a}" for a in ASSUMPTIONS],
    ]
    return "\n".join(lines)
