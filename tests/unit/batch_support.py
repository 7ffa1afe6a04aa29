"""Helpers for the batch/queue unit tests: buckets and queues on the moto server, the real reference
model published through the registry, and file builders for every format."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from maas.batch.context import BatchConfig, BatchContext

FEATURES = [f"f{i}" for i in range(100)]


@dataclass
class BatchEnv:
    s3: Any
    sqs: Any
    ingest: str
    results: str
    chunk_queue: str
    loader: Any
    model: Any  # LoadedModel of ref v1 (for direct predictions)

    def ctx(self, **config: Any) -> BatchContext:
        cfg = BatchConfig(results_bucket=self.results, chunk_queue_url=self.chunk_queue, **config)
        return BatchContext(s3=self.s3, sqs=self.sqs, loader=self.loader, config=cfg)

    def put(self, key: str, body: bytes, **kwargs: Any) -> dict[str, Any]:
        resp: dict[str, Any] = self.s3.put_object(Bucket=self.ingest, Key=key, Body=body, **kwargs)
        return resp

    def get(self, key: str, bucket: str | None = None) -> bytes:
        data: bytes = self.s3.get_object(Bucket=bucket or self.results, Key=key)["Body"].read()
        return data

    def report(self, rel: str) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.get(f"predictions/{rel}._report.json"))
        return value

    def exists(self, key: str, bucket: str | None = None) -> bool:
        resp = self.s3.list_objects_v2(Bucket=bucket or self.results, Prefix=key)
        return any(o["Key"] == key for o in resp.get("Contents", []))

    def keys(self, prefix: str = "") -> list[str]:
        resp = self.s3.list_objects_v2(Bucket=self.results, Prefix=prefix)
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def drain_chunks(self, handle: Any, *, max_rounds: int = 50) -> int:
        """Deliver chunk-queue messages to ``handle(event)`` as an SQS event source mapping would."""
        delivered = 0
        for _ in range(max_rounds):
            resp = self.sqs.receive_message(
                QueueUrl=self.chunk_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
            )
            messages = resp.get("Messages", [])
            if not messages:
                return delivered
            for m in messages:
                out = handle(sqs_event([m]))
                if not out.get("batchItemFailures"):
                    self.sqs.delete_message(QueueUrl=self.chunk_queue, ReceiptHandle=m["ReceiptHandle"])
                delivered += 1
        return delivered


def make_env(s3_bucket: str, registry: Any, tmp_path: Path) -> BatchEnv:
    from maas_models import ModelLoader

    s3 = boto3.client("s3")
    sqs = boto3.client("sqs")
    ingest = f"ingest-{uuid.uuid4().hex[:10]}"
    results = f"results-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=ingest)
    s3.create_bucket(Bucket=results)
    queue = sqs.create_queue(QueueName=f"chunks-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    loader = ModelLoader(registry=registry, cache_dir=str(tmp_path / "cache"))
    return BatchEnv(
        s3=s3,
        sqs=sqs,
        ingest=ingest,
        results=results,
        chunk_queue=queue,
        loader=loader,
        model=loader.get("ref", 1),
    )


def s3_event(bucket: str, key: str, version_id: str | None = None, sequencer: str = "0") -> dict[str, Any]:
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": 1, "eTag": "x", "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-28T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "t",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def sqs_event(
    messages: list[dict[str, Any]], *, arn: str = "arn:aws:sqs:us-east-1:000000000000:q"
) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m.get("MessageId") or m.get("messageId") or str(uuid.uuid4()),
                "receiptHandle": m.get("ReceiptHandle", "rh"),
                "body": m["Body"] if "Body" in m else m["body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "x",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 100)).astype(np.float32)


def csv_bytes(x: np.ndarray, *, ids: bool = True, fmt: str = "{:.6f}") -> bytes:
    head = (["id"] if ids else []) + FEATURES
    lines = [",".join(head)]
    for i, row in enumerate(x):
        cells = ([f"r{i}"] if ids else []) + [fmt.format(v) for v in row]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def jsonl_bytes(x: np.ndarray, *, mode: str = "flat") -> bytes:
    out = []
    for i, row in enumerate(x):
        if mode == "flat":
            obj: dict[str, Any] = {"id": i, **{f: float(v) for f, v in zip(FEATURES, row, strict=True)}}
        else:
            obj = {"id": i, "features": [float(v) for v in row]}
        out.append(orjson.dumps(obj))
    return b"\n".join(out) + b"\n"


def parquet_bytes(x: np.ndarray, *, row_group_size: int = 1000) -> bytes:
    table = pa.table({"id": pa.array(np.arange(len(x))), **{f: x[:, j] for j, f in enumerate(FEATURES)}})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def read_csv_output(data: bytes) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(column_types={"id": pa.string(), "class": pa.string()}),
    )


def lambda_context(name: str = "maas-test") -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        function_name=name,
        memory_limit_in_mb=1024,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        aws_request_id=str(uuid.uuid4()),
        get_remaining_time_in_millis=lambda: 60_000,
    )
