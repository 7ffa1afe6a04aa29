"""The ingest key convention: incoming/<model>[@<version|alias>]/<path>."""

from __future__ import annotations

import pytest
from maas.batch.keys import InvalidKey, decode_event_key, parse_key


@pytest.mark.parametrize(
    ("key", "model", "selector", "path", "fmt"),
    [
        ("incoming/ref/a.csv", "ref", None, "a.csv", "csv"),
        ("incoming/ref@3/2026/11/day.CSV", "ref", "3", "2026/11/day.CSV", "csv"),
        ("incoming/my-model_2@production/x/y.jsonl", "my-model_2", "production", "x/y.jsonl", "jsonl"),
        ("incoming/ref/a.ndjson", "ref", None, "a.ndjson", "jsonl"),
        ("incoming/ref/a.parquet", "ref", None, "a.parquet", "parquet"),
        ("incoming/ref/a.pq", "ref", None, "a.pq", "parquet"),
        ("incoming/ref@latest/deep/a b.npy", "ref", "latest", "deep/a b.npy", "npy"),
    ],
)
def test_valid_keys(key: str, model: str, selector: str | None, path: str, fmt: str) -> None:
    bk = parse_key(key)
    assert (bk.model, bk.selector, bk.path, bk.format) == (model, selector, path, fmt)
    head = model if selector is None else f"{model}@{selector}"
    assert bk.output_key == f"predictions/{head}/{path}"
    assert bk.errors_key == bk.output_key + ".errors.jsonl"
    assert bk.report_key == bk.output_key + "._report.json"


def test_version_and_alias_properties() -> None:
    assert parse_key("incoming/ref@12/a.csv").version == 12
    assert parse_key("incoming/ref@12/a.csv").alias is None
    assert parse_key("incoming/ref@prod/a.csv").alias == "prod"
    assert parse_key("incoming/ref/a.csv").version is None


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("other/ref/a.csv", "must start with"),
        ("incoming/a.csv", "model segment"),
        ("incoming/ref/", "model segment"),
        ("incoming/Ref/a.csv", "model name"),
        ("incoming/../a.csv", "model name"),
        ("incoming/ref@/a.csv", "after '@'"),
        ("incoming/ref@a/b/a.csv", None),  # valid: alias "a"
        ("incoming/ref/../../etc/passwd.csv", "'..'"),
        ("incoming/ref//a.csv", "empty"),
        ("incoming/ref/./a.csv", "'.'"),
        ("incoming/ref/a.txt", "unsupported file extension"),
        ("incoming/ref/a.csv.errors.jsonl", "reserved"),
        ("incoming/ref/a\x01.csv", "control"),
        ("incoming/" + "x" * 70 + "/a.csv", "model name"),
    ],
)
def test_invalid_keys(key: str, needle: str | None) -> None:
    if needle is None:
        parse_key(key)
        return
    with pytest.raises(InvalidKey, match=needle):
        parse_key(key)


def test_event_keys_are_url_decoded() -> None:
    assert decode_event_key("incoming/ref%40prod/my+file%2B1.csv") == "incoming/ref@prod/my file+1.csv"
