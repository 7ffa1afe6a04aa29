"""Model names, versions, aliases and artifact paths are validated against path traversal, at every
entry point: the model layer, the registry's S3 keys, the loader's cache paths, the predict API's
routes, batch object keys, queue messages and training specs."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from maas_models.errors import InvalidModelName, ModelError
from maas_models.naming import (
    parse_spec,
    validate_alias,
    validate_name,
    validate_relpath,
    validate_version,
)

from tests import apigw
from tests.apigw import Client

predict_app = apigw.predict_app

SAFE_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
TRAVERSALS = [
    "..",
    "../x",
    "x/..",
    "x/../y",
    "../../etc/passwd",
    "/etc/passwd",
    "\\..\\x",
    "..\\x",
    "%2e%2e",
    "%2e%2e%2fx",
    "..%2f..%2fx",
    "x%00",
    "x\x00y",
    "ref\n",
    "ref\r\n",
    "ref/",
    "./ref",
    "ref/.",
    "\u2024\u2024",  # one-dot leaders
    "\uff0e\uff0e",  # fullwidth full stops
    "ref\u2215x",  # division slash
    "REF",
    "",
    " ",
    "a" * 64,
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_the_model_layer_refuses_traversal_in_every_name(bad: str) -> None:
    for check in (validate_name, validate_alias, validate_version, parse_spec):
        if check is parse_spec and bad == "":
            continue  # "" means "latest" there, by design
        with pytest.raises(InvalidModelName):
            check(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "x/../../y",
        "/abs",
        "saved_model/../../../etc/x",
        "a//b",
        "./a",
        "a\\b",
        "a\x00",
        "a\n",
        "",
        ".",
    ],
)
def test_artifact_paths_stay_inside_the_version_directory(bad: str) -> None:
    with pytest.raises(InvalidModelName):
        validate_relpath(bad)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_any_accepted_name_is_a_plain_safe_segment(text: str) -> None:
    import re

    try:
        name = validate_name(text)
    except InvalidModelName:
        return
    assert re.fullmatch(SAFE_NAME, name) and name == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_accepted_artifact_paths_never_leave_their_directory(text: str) -> None:
    try:
        rel = validate_relpath(text)
    except InvalidModelName:
        return
    joined = posixpath.normpath(posixpath.join("/cache/ref/1", rel))
    assert joined.startswith("/cache/ref/1/"), rel


def test_registry_keys_stay_under_the_model_prefix(s3_moto: str) -> None:
    from maas_models import Registry

    registry = Registry(bucket=s3_moto)
    for bad in TRAVERSALS:
        with pytest.raises(InvalidModelName):
            registry.resolve(bad, "latest")
        with pytest.raises(InvalidModelName):
            registry.resolve("ref", bad or "..")


def test_a_manifest_naming_files_outside_its_directory_writes_nothing_outside_the_cache(
    published_ref: Any, tmp_path: Path
) -> None:
    """A tampered manifest (v2) whose SavedModel files point outside the version directory."""
    from maas_models import ModelLoader

    s3, bucket = published_ref.s3, published_ref.bucket
    raw = orjson.loads(s3.get_object(Bucket=bucket, Key="models/ref/1/manifest.json")["Body"].read())
    escape = tmp_path / "escaped"
    raw.update(version=2, runtime="savedmodel")
    raw["files"] = {f"saved_model/../../../../../../..{escape}/pwned.pb": {"sha256": "0" * 64, "size": 4}}
    s3.put_object(
        Bucket=bucket, Key=f"models/ref/2/saved_model/../../../../../../..{escape}/pwned.pb", Body=b"evil"
    )
    s3.put_object(Bucket=bucket, Key="models/ref/2/manifest.json", Body=orjson.dumps(raw))
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "cache")
    with pytest.raises(ModelError):
        loader.get("ref", 2)
    assert not escape.exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..:predict",
        "/v1/models/..%2F..%2Fetc:predict",
        "/v1/models/%2e%2e/versions/1:predict",
        "/v1/models/ref/versions/..%2F1:predict",
        "/v1/models/ref/labels/..%2Fproduction:predict",
        "/v2/models/..%2Fref/infer",
        "/v2/models/ref%00/infer",
        "/v2/models/ref/versions/1%2F..%2F2/infer",
        "/v1/models/ref%0A:predict",
    ],
)
def test_the_predict_api_answers_traversal_with_a_4xx(predict_app: Any, path: str) -> None:
    from urllib.parse import unquote

    body = orjson.dumps({"instances": [[0.5] * 100]})
    for raw in (path, unquote(path)):  # as sent, and as a gateway that decodes would pass it on
        r = Client(predict_app.handler).post(raw, body=body)
        assert 400 <= r.status < 500 and "error" in orjson.loads(r.body), (raw, r.status, r.body)


@pytest.mark.parametrize(
    "key",
    [
        "incoming/../x.csv",
        "incoming/ref/../../x.csv",
        "incoming/ref/./x.csv",
        "incoming/ref//x.csv",
        "incoming/../ref/x.csv",
        "incoming/ref@../x.csv",
        "incoming/Ref/x.csv",
        "incoming/ref/x\x00.csv",
        "incoming/ref/a/\x1b[2J.csv",
    ],
)
def test_batch_keys_with_traversal_are_ignored(key: str) -> None:
    from maas.batch.keys import InvalidKey, parse_key

    with pytest.raises(InvalidKey):
        parse_key(key)


# `^...$` with re.match accepts a trailing newline ("ref\n"): every name check uses fullmatch.
def test_batch_keys_refuse_a_model_name_with_a_newline() -> None:
    from maas.batch.keys import InvalidKey, parse_key

    with pytest.raises(InvalidKey):
        parse_key("incoming/ref\n/x.csv")


def test_queue_messages_refuse_a_model_name_with_a_newline() -> None:
    from maas.queue.schema import InvalidMessage, parse_message

    with pytest.raises(InvalidMessage):
        parse_message(orjson.dumps({"id": "a", "model": "ref\n", "instances": [[0.5] * 100]}).decode())


def test_training_specs_refuse_a_model_name_with_a_newline() -> None:
    from maas.training.spec import SpecError
    from maas.training.spec import parse_spec as parse_training_spec

    dataset = {"uri": "s3://data-bucket/train.parquet", "label_column": "label"}
    assert parse_training_spec({"model_name": "ref", "dataset": dataset}).model_name == "ref"
    with pytest.raises(SpecError):
        parse_training_spec({"model_name": "ref\n", "dataset": dataset})


@pytest.mark.parametrize("bad", ["../x", "ref/..", "..", "/etc", "ref\x00", "%2e%2e"])
def test_queue_messages_refuse_traversal_in_model_and_label(bad: str) -> None:
    from maas.queue.schema import InvalidMessage, parse_message

    for field in ("model", "label"):
        msg = {"id": "a", "model": "ref", "instances": [[0.5] * 100], field: bad}
        with pytest.raises(InvalidMessage):
            parse_message(orjson.dumps(msg).decode())
