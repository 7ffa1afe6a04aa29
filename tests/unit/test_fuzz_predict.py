"""Fuzzing the real predict handler with Hypothesis: every bad request gets a JSON 4xx, never a 5xx, a
crash or a hang.

Requests go through the test client of tests/apigw.py, which builds real API Gateway REST (1.0), HTTP
API (2.0) and Function URL events, into `functions/predict/app.py`'s handler serving the published
reference model (moto S3). Generated: malformed JSON, arbitrary JSON values, wrong types, ragged and
deeply nested tensors, huge, negative and non-integer shapes, datatype/data mismatches, NaN/Inf,
unicode (names, paths, invalid UTF-8, BOMs), for the TF Serving and Open Inference v2 routes; v2 binary
tensor framings (Inference-Header-Content-Length): truncated, oversized, random bytes after a valid
JSON header, random header values and random binary_data_size / shape / datatype combinations.

Sizes: the Hypothesis profile "ci" (default) runs a few hundred examples in all; "full" runs >= 10,000
(`MAAS_FUZZ_PROFILE=full pytest tests/unit/test_fuzz_predict.py`), and MAAS_FUZZ_EXAMPLES=N sets the
examples per test. Each example has a hard deadline (SIGALRM) so a hang fails instead of stalling.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import apigw
from tests.apigw import KINDS, Client

predict_app = apigw.predict_app  # fixture: the handler serving the reference model "ref" v1

N_FEATURES = 100
TESTS_IN_MODULE = 11  # the "full" profile gives each >= 10,000 / 11 examples (rounded up generously)

settings.register_profile(
    "maas-fuzz-ci",
    max_examples=40,
    deadline=None,  # the hard per-example deadline below is what catches hangs
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    derandomize=False,
    print_blob=True,
)
settings.register_profile(
    "maas-fuzz-full",
    parent=settings.get_profile("maas-fuzz-ci"),
    max_examples=1200,
)
PROFILE = {"ci": "maas-fuzz-ci", "full": "maas-fuzz-full"}[os.environ.get("MAAS_FUZZ_PROFILE", "ci")]
EXAMPLES = int(os.environ.get("MAAS_FUZZ_EXAMPLES", "0")) or settings.get_profile(PROFILE).max_examples
FUZZ = settings(settings.get_profile(PROFILE), max_examples=EXAMPLES)
DEADLINE_S = float(os.environ.get("MAAS_FUZZ_DEADLINE_S", "5"))

TFS_ROUTES = [
    "/v1/models/ref:predict",
    "/v1/models/ref/versions/1:predict",
    "/v1/models/ref/labels/latest:predict",
]
V2_ROUTES = ["/v2/models/ref/infer", "/v2/models/ref/versions/1/infer"]
ALL_POST_ROUTES = [*TFS_ROUTES, *V2_ROUTES, "/v1/models/ref:explain"]


def v2_text(shape: str, data: str = "[0.5]") -> str:
    return f'{{"inputs": [{{"name": "features", "shape": {shape}, "datatype": "FP32", "data": {data}}}]}}'


ROW_TEXT = "[" + ",".join(["0.5"] * N_FEATURES) + "]"
VALID_TFS = f'{{"instances": [{ROW_TEXT}]}}'.encode()
VALID_V2 = v2_text("[1, 100]", ROW_TEXT).encode()
NAME_ROUTES = [
    "/v1/models/{n}:predict", "/v1/models/{n}/versions/{v}:predict", "/v1/models/{n}/labels/{v}:predict",
    "/v2/models/{n}/infer", "/v2/models/{n}/versions/{v}/infer", "/v1/models/{n}", "/v1/models/{n}/metadata",
    "/v2/models/{n}", "/v2/models/{n}/ready", "/v1/models/{n}:explain", "/v1/models/{n}/card",
]  # fmt: skip


@contextlib.contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) when the block runs longer than `seconds`: a hang must not stall the suite."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the handler did not answer within {seconds} s (hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(
    app: Any, method: str, path: str, body: bytes | str | None, kind: str = "rest", b64: bool = False
) -> Any:
    with hard_deadline(DEADLINE_S):
        return Client(app.handler, kind=kind).request(method, path, body=body, base64_body=b64)


def assert_json_4xx(r: Any, what: object) -> None:
    """A 4xx whose body is a JSON object with an "error" string."""
    assert 400 <= r.status < 500, f"{r.status} for {what!r}: {r.body[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    doc = orjson.loads(r.body)
    assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], doc


def assert_no_5xx(r: Any, what: object) -> None:
    """Valid-by-chance input may succeed; anything else must be a JSON 4xx."""
    if r.status == 200:
        doc = orjson.loads(r.body)
        assert isinstance(doc, dict), doc
        answered = {"predictions", "outputs", "explanations"} & set(doc)  # TF Serving, v2, :explain
        assert answered and all(doc[k] not in (None, [], {}) for k in answered), doc
        return
    assert_json_4xx(r, what)


# --- strategies ---------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() if _encodable(value) else "null"


def _encodable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def _bad_row() -> st.SearchStrategy[Any]:
    """A row that is not 100 float32 numbers."""
    return st.one_of(
        st.lists(finite, max_size=130).filter(lambda r: len(r) != N_FEATURES),  # wrong width
        st.lists(scalars, min_size=N_FEATURES, max_size=N_FEATURES).filter(  # wrong element types
            lambda r: any(not isinstance(v, int | float) or isinstance(v, bool) for v in r)
        ),
        st.lists(st.just(1e39), min_size=N_FEATURES, max_size=N_FEATURES),  # outside float32
        st.dictionaries(st.text(max_size=8), finite, max_size=5),  # named features, most missing
        json_values.filter(lambda v: not isinstance(v, list)),
        st.lists(st.lists(finite, max_size=3), min_size=1, max_size=4),  # one level too deep
    )


good_row = st.lists(finite, min_size=N_FEATURES, max_size=N_FEATURES)


@st.composite
def bad_instances(draw: st.DrawFn) -> Any:
    """TF Serving row-format values with at least one bad row among good ones."""
    rows = draw(st.lists(good_row, max_size=2))
    rows.insert(draw(st.integers(0, len(rows))), draw(_bad_row()))
    return rows


@st.composite
def tfserving_bodies(draw: st.DrawFn) -> Any:
    """TF Serving request objects that are wrong somewhere."""
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return {"instances": draw(bad_instances())}
    if kind == 1:
        return {"inputs": draw(bad_instances())}
    if kind == 2:  # columnar with a bad named input
        return {"inputs": {draw(st.text(max_size=10)): draw(json_values)}}
    if kind == 3:  # both formats
        return {"instances": [draw(good_row)], "inputs": [draw(good_row)]}
    if kind == 4:  # wrong top-level keys / types
        return draw(
            st.dictionaries(st.text(max_size=12), json_values, max_size=4).filter(
                lambda d: "instances" not in d and "inputs" not in d
            )
        )
    if kind == 5:  # a good row, a bad signature or extra junk
        return {"instances": [draw(good_row)], "signature_name": draw(st.text(max_size=30).filter(
            lambda s: s not in ("serving_default", "")))}  # fmt: skip
    if kind == 6:  # b64 objects where numbers are expected
        return {"instances": [[{"b64": draw(st.text(max_size=20))}] * draw(st.integers(1, 3))]}
    return {"instances": draw(st.one_of(json_values, st.just([]), st.just([[]])))}


DATATYPES = ["FP32", "FP64", "INT32", "INT64", "BOOL", "BYTES", "FP16", "UINT8", "fp32", "", "float32"]
shapes = st.lists(
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63),
        st.sampled_from([0, -1, 2**31, 2**62, 10**12]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=4),
        st.none(),
    ),
    max_size=5,
)


@st.composite
def v2_bodies(draw: st.DrawFn) -> Any:
    """Open Inference v2 request objects that are wrong somewhere."""
    kind = draw(st.integers(0, 6))
    tensor: dict[str, Any] = {
        "name": "features",
        "shape": [1, N_FEATURES],
        "datatype": "FP32",
        "data": draw(good_row),
    }
    if kind == 0:  # huge, negative, zero, non-integer shapes
        tensor["shape"] = draw(shapes.filter(lambda s: s != [1, N_FEATURES]))
    elif kind == 1:  # datatype/data mismatch
        tensor["datatype"] = draw(st.sampled_from(DATATYPES))
        tensor["data"] = draw(
            st.one_of(
                st.lists(st.text(max_size=3), min_size=N_FEATURES, max_size=N_FEATURES),
                st.lists(st.booleans(), min_size=N_FEATURES, max_size=N_FEATURES),
                st.lists(finite.filter(lambda v: not float(v).is_integer()), min_size=N_FEATURES,
                         max_size=N_FEATURES),
                st.lists(st.integers(min_value=2**40, max_value=2**70), min_size=N_FEATURES,
                         max_size=N_FEATURES),
                json_values,
            )
        )  # fmt: skip
        assume(not (tensor["datatype"] in ("FP32", "FP64") and _all_numbers(tensor["data"])))
    elif kind == 2:  # data count does not match the shape
        tensor["data"] = draw(st.lists(finite, max_size=250).filter(lambda d: len(d) != N_FEATURES))
    elif kind == 3:  # wrong or missing fields
        fields = st.sampled_from(["name", "shape", "datatype", "data", "parameters", "x"])
        tensor = draw(st.dictionaries(fields, json_values, max_size=5))
        assume(set(tensor) != {"name", "shape", "datatype", "data"})
    elif kind == 4:  # unknown input names
        tensor["name"] = draw(st.text(max_size=20).filter(lambda n: n != "features"))
    elif kind == 5:  # nested data with a bad leaf
        tensor["data"] = [[*draw(st.lists(finite, min_size=99, max_size=99)), draw(scalars.filter(
            lambda v: not isinstance(v, int | float) or isinstance(v, bool)))]]  # fmt: skip
    else:  # junk around the inputs list
        return draw(
            st.fixed_dictionaries(
                {"inputs": st.one_of(json_values, st.just([]))},
                optional={
                    "id": json_values,
                    "parameters": json_values,
                    "outputs": st.lists(
                        st.dictionaries(st.text(max_size=8), json_values, max_size=3), max_size=3
                    ),
                },
            ).filter(lambda d: not isinstance(d["inputs"], list) or not d["inputs"] or True)
        )
    body: dict[str, Any] = {"inputs": [tensor]}
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    return body


HEADER = "Inference-Header-Content-Length"
BIN_HEADER = orjson.dumps(
    {"inputs": [{"name": "features", "shape": [1, N_FEATURES], "datatype": "FP32",
                 "parameters": {"binary_data_size": 4 * N_FEATURES}}]}
)  # fmt: skip
BIN_TENSOR = b"\x00\x00\x00\x3f" * N_FEATURES  # 100 little-endian float32 0.5
BINARY_MEDIA_TYPES = apigw.template_binary_media_types()


def call_framed(app: Any, route: str, body: bytes, header_value: str | None, kind: str) -> Any:
    """A framed request as each front end delivers it (REST with the template's BinaryMediaTypes)."""
    headers = {"Content-Type": "application/octet-stream"}
    if header_value is not None:
        headers[HEADER] = header_value
    with hard_deadline(DEADLINE_S):
        client = Client(app.handler, kind=kind, binary_media_types=BINARY_MEDIA_TYPES)
        return client.request("POST", route, body=body, headers=headers)


def assert_no_5xx_framed(r: Any, what: object) -> None:
    """`assert_no_5xx`, where a 200 may also be a binary tensor answer (its JSON header checked)."""
    framed = r.headers.get("inference-header-content-length")
    if r.status == 200 and framed:
        doc = orjson.loads(r.content[: int(framed)])
        assert isinstance(doc, dict) and doc.get("outputs"), doc
        return
    assert_no_5xx(r, what)


@st.composite
def binary_inputs(draw: st.DrawFn) -> Any:
    """A v2 input declaring binary data, wrong somewhere (or right by chance)."""
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["features", "features", "x", ""])),
        "shape": draw(st.one_of(st.just([1, N_FEATURES]), shapes)),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "parameters": {"binary_data_size": draw(st.one_of(
            st.integers(min_value=-(2**63), max_value=2**64), st.sampled_from([0, 4, 400, 401]), json_values
        ))},
    }  # fmt: skip
    if draw(st.integers(0, 4)) == 0:
        tensor["data"] = draw(st.one_of(json_values, st.just([0.5] * N_FEATURES)))
    return tensor


def _all_numbers(data: Any) -> bool:
    if isinstance(data, list):
        return all(_all_numbers(v) for v in data)
    return isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(float(data))


# --- tests --------------------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=300), route=st.sampled_from(ALL_POST_ROUTES), b64=st.booleans())
def test_raw_bytes(predict_app: Any, raw: bytes, route: str, b64: bool) -> None:
    """Arbitrary bytes (invalid UTF-8 included), raw or base64-encoded by the gateway."""
    if b64:
        r = call(predict_app, "POST", route, raw, b64=True)
    else:
        r = call(
            predict_app, "POST", route, raw.decode("utf-8", "surrogateescape").encode("utf-8", "replace")
        )
    assert_json_4xx(r, raw)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet='{}[]":,0123456789.eE+-ntrufals \\', max_size=200),  # JSON-ish noise
    ),
    route=st.sampled_from(ALL_POST_ROUTES),
)
def test_malformed_json_text(predict_app: Any, text: str, route: str) -> None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    assume(not isinstance(value, dict))  # a JSON object is the next test's business
    assert_json_4xx(call(predict_app, "POST", route, text), text)


@FUZZ
@given(valid=st.sampled_from([VALID_TFS, VALID_V2]),
       cut=st.integers(min_value=0, max_value=10**6), junk=st.sampled_from(
           [b"", b"}", b"]", b",", b" x", b"\x00", b"\xef\xbb\xbf", b'"', b"NaN", b"Infinity", b"-Infinity"]),
       route=st.sampled_from(ALL_POST_ROUTES))  # fmt: skip
def test_truncated_and_spliced_json(
    predict_app: Any, valid: bytes, cut: int, junk: bytes, route: str
) -> None:
    """A valid request cut short or with junk spliced in (NaN/Infinity tokens, BOM, NUL, quotes)."""
    pos = cut % len(valid)
    body = valid[:pos] + junk + (valid[pos:] if junk else b"")
    assume(body != valid)
    assert_json_4xx(call(predict_app, "POST", route, body), body)


@FUZZ
@given(value=json_values, route=st.sampled_from(ALL_POST_ROUTES), kind=st.sampled_from(KINDS))
def test_arbitrary_json_values(predict_app: Any, value: Any, route: str, kind: str) -> None:
    """Any JSON value (objects with random keys, arrays, scalars) on any route and event shape."""
    assert_no_5xx(call(predict_app, "POST", route, dumps(value), kind=kind), value)


@FUZZ
@given(body=tfserving_bodies(), route=st.sampled_from([*TFS_ROUTES, "/v1/models/ref:explain"]))
def test_tfserving_bad_requests(predict_app: Any, body: Any, route: str) -> None:
    assert_json_4xx(call(predict_app, "POST", route, dumps(body)), body)


@FUZZ
@given(body=v2_bodies(), route=st.sampled_from(V2_ROUTES))
def test_v2_bad_requests(predict_app: Any, body: Any, route: str) -> None:
    assert_no_5xx(call(predict_app, "POST", route, dumps(body)), body)


@FUZZ
@given(
    depth=st.integers(min_value=2, max_value=200_000),
    leaf=st.sampled_from(["0.5", "", "{}", '"x"', "null"]),
    route=st.sampled_from(ALL_POST_ROUTES),
    wrap=st.sampled_from(["instances", "inputs", None]),
)
def test_deep_nesting(predict_app: Any, depth: int, leaf: str, route: str, wrap: str | None) -> None:
    """Nesting far beyond any tensor rank (and beyond parser recursion limits)."""
    nested = "[" * depth + leaf + "]" * depth
    body = nested if wrap is None else f'{{"{wrap}": {nested}}}'
    assert_json_4xx(call(predict_app, "POST", route, body), f"depth {depth}")


@FUZZ
@given(
    name=st.text(min_size=1, max_size=40),
    version=st.one_of(st.text(max_size=12), st.integers(-(2**70), 2**70).map(str)),
    template=st.sampled_from(NAME_ROUTES),
    kind=st.sampled_from(KINDS),
)  # fmt: skip
def test_unicode_and_traversal_in_names(
    predict_app: Any, name: str, version: str, template: str, kind: str
) -> None:
    """Model names and versions with unicode, '..', '/', '%2e', NUL and control characters."""
    assume(name != "ref")
    name = name if name.strip() else name + "x"
    path = template.format(n=name, v=version)
    body = orjson.dumps({"instances": [[0.5] * N_FEATURES]})
    method = "POST" if path.endswith(("predict", "infer", "explain")) else "GET"
    r = call(predict_app, method, path, body if method == "POST" else None, kind=kind)
    if r.status == 200:  # only "ref" (its version 1 or latest) or the model list can answer 200
        effective = urlsplit(path).path.rstrip("/")
        assert "/ref" in effective or effective in ("/v1/models", "/v2/models"), path
        orjson.loads(r.body)
        return
    assert_json_4xx(r, path)


@FUZZ
@given(
    mode=st.sampled_from(["truncated", "oversized", "random-after-header"]),
    cut=st.integers(min_value=0, max_value=10**6),
    junk=st.binary(min_size=1, max_size=500),
    route=st.sampled_from(V2_ROUTES),
    kind=st.sampled_from(KINDS),
)
def test_binary_framing_truncated_oversized_random(
    predict_app: Any, mode: str, cut: int, junk: bytes, route: str, kind: str
) -> None:
    """A valid framed request cut short, with bytes appended, or with random bytes after its JSON header."""
    full = BIN_HEADER + BIN_TENSOR
    if mode == "truncated":
        body = full[: cut % len(full)] or b"{"
    elif mode == "oversized":
        body = full + junk
    else:
        body = BIN_HEADER + junk
    r = call_framed(predict_app, route, body, str(len(BIN_HEADER)), kind)
    if mode == "random-after-header" and len(junk) == len(BIN_TENSOR):
        assert_no_5xx_framed(r, body)  # 400 bytes of random floats may be valid input
    else:
        assert_json_4xx(r, body)


@FUZZ
@given(
    inputs=st.lists(binary_inputs(), min_size=1, max_size=3),
    tail=st.one_of(st.binary(max_size=600), st.just(BIN_TENSOR)),
    header_value=st.one_of(
        st.none(), st.text(max_size=12), st.integers(-(2**70), 2**70).map(str), st.just("HEADER")
    ),
    extra=st.fixed_dictionaries({}, optional={"parameters": json_values, "outputs": json_values}),
    route=st.sampled_from(V2_ROUTES),
    kind=st.sampled_from(KINDS),
)
def test_binary_framing_random_headers_and_sizes(
    predict_app: Any, inputs: Any, tail: bytes, header_value: str | None, extra: Any, route: str, kind: str
) -> None:
    """Random binary_data_size / shape / datatype / data combinations and Inference-Header-Content-Length
    values (missing, not a number, negative, huge, right)."""
    header = dumps({"inputs": inputs, **extra}).encode()
    if header_value == "HEADER":
        header_value = str(len(header))
    assume(header_value is None or "\x00" not in header_value)
    r = call_framed(predict_app, route, header + tail, header_value, kind)
    assert_no_5xx_framed(r, (inputs, header_value))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"instances": [' + ",".join([ROW_TEXT] * 10_001) + "]}", id="rows-over-the-cap"),
        pytest.param(v2_text("[1000000000000, 100]"), id="huge-shape-tiny-data"),
        pytest.param(v2_text("[4294967296, 4294967296]", "[]"), id="shape-product-overflows-int64"),
        pytest.param(v2_text("[-1, 100]", "[]"), id="negative-shape"),
        pytest.param('{"instances": "' + "A" * 5_000_000 + '"}', id="5-MB-string"),
        pytest.param("[" * 7_000_000, id="7-MB-body"),
        pytest.param('{"instances": [[' + "1" * 100_000 + "]]}", id="100k-digit-number"),
        pytest.param('{"instances": [[1e999999]]}', id="overflowing-exponent"),
        pytest.param('{"instances": [[0.5]], "instances": [[0.5]]}', id="duplicate-keys"),
        pytest.param('\ufeff{"instances": [[0.5]]}', id="utf8-bom"),
        pytest.param('{"instances": [["\ud800"]]}', id="lone-surrogate"),
    ],
)  # fmt: skip
def test_pathological_bodies(predict_app: Any, body: str) -> None:
    for route in ("/v1/models/ref:predict", "/v2/models/ref/infer"):
        assert_json_4xx(call(predict_app, "POST", route, body), body[:80])


@pytest.mark.parametrize(
    "route, body",
    [
        ("/v1/models/ref:predict", f'{{"instances": [{ROW_TEXT.replace("0.5", "true")}]}}'),
        ("/v2/models/ref/infer", v2_text("[1, 100]", ROW_TEXT.replace("0.5", "true"))),
        ("/v2/models/ref/infer", v2_text("[1, 100]", ROW_TEXT).replace('"FP32"', '"BOOL"')),
    ],
    ids=["tfs-bools-as-float32", "v2-bools-as-FP32", "v2-floats-as-BOOL"],
)
def test_datatype_mismatch_is_refused(predict_app: Any, route: str, body: str) -> None:
    """TF Serving and Triton refuse a JSON boolean for a float tensor, and numbers for a BOOL tensor."""
    assert_json_4xx(call(predict_app, "POST", route, body), body[:80])


@pytest.mark.parametrize("digit", ["\u00b2", "\u0661", "\u2460", "\u00bd", "\uff11", "1\u0663", "\U0001d7cf"])
@pytest.mark.parametrize(
    "template",
    ["/v1/models/ref/versions/{}:predict", "/v2/models/ref/versions/{}/infer", "/v1/models/ref/versions/{}",
     "/v2/models/ref/versions/{}/ready", "/v1/models/ref/versions/{}:explain"],
)  # fmt: skip
def test_unicode_digits_as_versions(predict_app: Any, digit: str, template: str) -> None:
    """'²', Arabic-Indic, circled, fullwidth digits pass str.isdigit() but are no versions: a 4xx."""
    path = template.format(digit)
    method = "GET" if not path.endswith(("predict", "infer", "explain")) else "POST"
    body = VALID_TFS if "/v1/" in path else VALID_V2
    assert_json_4xx(call(predict_app, method, path, body if method == "POST" else None), path)


@pytest.mark.parametrize("depth", [100, 400, 600, 800, 1000, 1023])
@pytest.mark.parametrize("route", ALL_POST_ROUTES)
def test_nesting_just_under_the_parser_limit(predict_app: Any, depth: int, route: str) -> None:
    """orjson parses up to 1024 levels: later checks must not recurse into a RecursionError (a 500)."""
    nested = "[" * depth + "0.5" + "]" * depth
    assert_json_4xx(call(predict_app, "POST", route, f'{{"instances": {nested}}}'), f"depth {depth}")
    assert_json_4xx(call(predict_app, "POST", route, v2_text("[1, 100]", nested)), f"v2 depth {depth}")


def test_profiles() -> None:
    """The opt-in profile runs at least 10,000 examples across this module's fuzz tests."""
    assert settings.get_profile("maas-fuzz-full").max_examples * TESTS_IN_MODULE >= 10_000
    assert 100 <= settings.get_profile("maas-fuzz-ci").max_examples * TESTS_IN_MODULE <= 1_000
