"""The body reader's boolean prefilter: it may only ever skip the tensor scan when no true/false token
can be in the body (skipping wrongly would let a JSON boolean through as a number)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from maas.serving.body import may_hold_booleans, read_json


def _event(body: str) -> dict[str, object]:
    return {"body": body, "isBase64Encoded": False, "headers": {"Content-Type": "application/json"}}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('truefals[]{}, 0123456789.e-"instapd:')), max_size=60))
def test_prefilter_agrees_with_the_full_search(text: str) -> None:
    expected = "true" in text or "false" in text
    assert may_hold_booleans(text) is expected
    assert may_hold_booleans(text.encode()) is expected


def test_numeric_bodies_skip_the_scan_and_booleans_are_still_seen() -> None:
    for body in ('{"instances": [[1.5, -2e-3, 0]]}', '{"inputs": {"x": [[1, 2]]}}'):
        assert read_json(_event(body), 1 << 20) == (orjson.loads(body), False)
    for body in ('{"instances": [[true, 1]]}', '{"inputs": {"x": [[1, false]]}}'):
        assert read_json(_event(body), 1 << 20)[1] is True
