"""Responsible-AI routes: `POST /v1/models/{m}[/versions/{v}|/labels/{l}]:explain` and `GET .../card`.

`:explain` takes a TF Serving `:predict` body plus optional keys:

    {"instances": [[...]], "target": 3 | "label" | [per row], "top_k": 10, "method": "auto",
     "grid": 4 | [rows, cols], "segments": "grid" | "superpixels", "n_segments": 16,
     "token_baseline": "mask" | "oov", "output": "<output name>"}

and answers one explanation per row: the explained class (the predicted one unless `target` says
otherwise), f(x), f(baseline), the top-k features by |attribution| and how many model evaluations
were made. Attributions are exactly complete: they sum to f(x) - f(baseline) (`sum_attributions`).
A model with one `[N, F]` input is explained per feature; any other (images, several inputs) per
group of values (`maas.rai.explain_groups`): image grid cells (`grid`, default 4 x 4) or SLIC
superpixels (`segments: "superpixels"`, about `n_segments`) and one group per other input; `output`
picks which output to explain when there are several. Raw inputs (JPEG/PNG, sentences, categories)
are preprocessed as for `:predict` and explained per token / per raw input (`maas.rai.explain_raw`;
`token_baseline` picks what an absent token becomes).

`/card` serves the version's model card with content negotiation on `Accept`: application/json,
text/markdown or text/html (406 for anything else). A version published without card files gets a
card generated from its manifest (header `X-Maas-Card: generated`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from maas.protocols import tfserving
from maas.protocols.errors import PayloadTooLarge, ProtocolError
from maas.rai import audit
from maas.serving.routes.common import (
    STATE,
    current_event,
    max_rows,
    model_headers,
    model_response,
    read_tensor_body,
    record_prediction,
    service,
)

router = Router()
TAGS = ["Responsible AI"]
EXPLAIN_KEYS = ("target", "top_k", "method", "grid", "segments", "n_segments", "token_baseline", "output")
MAX_TOP_K = 1000
_cards: dict[tuple[str, str, int, str], tuple[bytes, bool]] = {}


# -- :explain -------------------------------------------------------------------------------------------
def _options(body: dict[str, Any], n_features: int | None) -> tuple[Any, int | None, str]:
    from maas.rai.explain import DEFAULT_TOP_K, METHODS  # card/explain: imported on use (cold start)

    target = body.get("target")
    if isinstance(target, bool) or (target is not None and not isinstance(target, int | str | list)):
        raise ProtocolError("'target' must be a class index, a class label, or a list of them (one per row)")
    top_k = body.get("top_k", DEFAULT_TOP_K)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ProtocolError("'top_k' must be a positive integer (or null for every feature)")
    top_k = None if top_k is None else min(int(top_k), n_features or MAX_TOP_K, MAX_TOP_K)
    method = body.get("method", "auto")
    if method not in METHODS:
        raise ProtocolError(f"'method' must be one of {', '.join(METHODS)}")
    return target, top_k, str(method)


def _explain(model: str, version: str | None = None, label: str | None = None) -> Response[dict[str, Any]]:
    from maas.rai.explain import explanation_response

    started = time.perf_counter()
    body, may_hold_bools = read_tensor_body()
    if not isinstance(body, dict):
        tfserving.parse_predict_request(body)  # raises the protocol's "must be a JSON object" error
    request = tfserving.parse_predict_request({k: v for k, v in body.items() if k not in EXPLAIN_KEYS})
    svc = service()
    loaded = svc.get(model, version, label)
    sig, limits = svc.signature(loaded), STATE.settings
    inputs = tfserving.bind_inputs(
        request, sig, max_rows(), check_bools=may_hold_bools, max_elements=limits.max_elements
    )
    rows = len(next(iter(inputs.values())))
    if rows > limits.explain_max_rows:
        raise PayloadTooLarge(
            f"':explain' takes at most {limits.explain_max_rows} rows (MAAS_EXPLAIN_MAX_ROWS); the request "
            f"has {rows}: send the rows in several requests"
        )
    from maas.rai.explain_groups import per_feature

    tabular = per_feature(sig)
    target, top_k, method = _options(body, sig.inputs[0].shape[1] if tabular else None)
    if isinstance(target, list) and len(target) != rows:
        raise ProtocolError(f"'target' has {len(target)} entries for {rows} rows")
    explanations = _explanations(loaded, body, inputs, target, method, tabular)
    ref = loaded.ref
    record_prediction("explain", ref.name, ref.version, rows, started)
    audit.note(kind="explain", model=ref.name, version=ref.version, rows=rows)
    doc = {
        "model": {"name": ref.name, "version": ref.version},
        "explanations": explanation_response(explanations, top_k=top_k),
    }
    return model_response(doc, ref)


def _explanations(
    loaded: Any, body: dict[str, Any], inputs: dict[str, Any], target: Any, method: str, tabular: bool
) -> list[Any]:
    """`maas.rai.explain_groups.explain_loaded`; a 400 naming why when an explanation cannot apply."""
    from maas_models.errors import InvalidInput

    from maas.rai.explain_groups import ExplainOptions, explain_loaded, parse_grid, parse_segments

    if tabular:
        for key in ("grid", "segments", "n_segments", "output"):
            if key in body:
                raise ProtocolError(
                    f"'{key}' applies to image and multi-input models; this one has one [N, F] input"
                )
    output = body.get("output")
    if output is not None and not isinstance(output, str):
        raise ProtocolError("'output' must be the name of one of the model's outputs")
    token_baseline = body.get("token_baseline")
    if token_baseline is not None and token_baseline not in ("mask", "oov"):
        raise ProtocolError('\'token_baseline\' must be "mask" (padding id 0) or "oov" (the OOV id)')
    try:
        segments, n_segments = parse_segments(body.get("segments"), body.get("n_segments"))
        options = ExplainOptions(
            grid=parse_grid(body.get("grid")),
            segments=segments,
            n_segments=n_segments,
            token_baseline=token_baseline,
            output=output,
            target=target,
            method=method,  # type: ignore[arg-type]
            n_samples=STATE.settings.explain_samples,
        )
        return explain_loaded(loaded, inputs, options)
    except InvalidInput as exc:
        raise ProtocolError(f"cannot explain this request: {exc}") from None


@router.post(
    "/v1/models/<model>:explain", summary="Explain predictions (per-feature attributions)", tags=TAGS
)
def explain(model: str) -> Response[dict[str, Any]]:
    return _explain(model)


@router.post("/v1/models/<model>/versions/<version>:explain", summary="Explain with a version", tags=TAGS)
def explain_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _explain(model, version=version)


@router.post("/v1/models/<model>/labels/<label>:explain", summary="Explain with a label (alias)", tags=TAGS)
def explain_label(model: str, label: str) -> Response[dict[str, Any]]:
    return _explain(model, label=label)


# -- /card ----------------------------------------------------------------------------------------------
def _with_version(data: bytes, version: int) -> bytes:
    """Training writes the card before the registry numbers the version: fill it in when serving."""
    try:
        card = orjson.loads(data)
        model = card.get("model") if isinstance(card, dict) else None
        if isinstance(model, dict) and model.get("version") is None:
            model["version"] = version
            return orjson.dumps(card, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        pass
    return data


def _card_bytes(name: str, version: int, media: str) -> tuple[bytes, bool]:
    """(body, generated) of one card file; cached per version (published versions are immutable)."""
    from maas_models.errors import ModelUnavailable
    from maas_models.s3 import storage_errors

    from maas.rai.card import CARD_FILES, build_card, render_html, render_markdown

    registry = service().registry
    key = (str(registry.bucket), name, version, media)
    hit = _cards.get(key)
    if hit is not None:
        return hit
    generated = False
    try:  # the registry's reader: the lean stdlib S3 reader in Lambda, boto3 elsewhere
        found = registry.reader.get_bytes(registry.bucket, registry.key(name, version, CARD_FILES[media]))
    except storage_errors() as exc:
        raise ModelUnavailable(
            f"model storage unavailable while reading the card: {type(exc).__name__}"
        ) from exc
    if found is not None:
        data: bytes = _with_version(found, version) if media == "application/json" else found
    else:
        manifest = registry.manifest(name, version)
        card = build_card(manifest=manifest)
        if media == "application/json":
            data = orjson.dumps(card, option=orjson.OPT_INDENT_2)
        elif media == "text/markdown":
            data = render_markdown(card).encode()
        else:
            data = render_html(card, plots=False).encode()
        generated = True
    _cards[key] = (data, generated)
    return data, generated


def _card(model: str, version: str | None = None, label: str | None = None) -> Response[str]:
    from maas.rai.card import CARD_FILES, negotiate

    headers = current_event().headers or {}
    accept = next((v for k, v in headers.items() if k.lower() == "accept"), None)
    media = negotiate(accept)
    if media is None:
        raise ProtocolError(
            f"cannot serve the model card as {accept!r}; accept one of {', '.join(CARD_FILES)}",
            status_code=406,
        )
    svc = service()
    ver = svc.resolve_version(model, version, label)
    data, generated = _card_bytes(model, ver, media)
    out_headers = {**model_headers(model, ver), "Vary": "Accept"}
    if generated:
        out_headers["X-Maas-Card"] = "generated"
    content_type = media + ("; charset=utf-8" if media.startswith("text/") else "")
    return Response(status_code=200, content_type=content_type, body=data.decode(), headers=out_headers)


@router.get("/v1/models/<model>/card", summary="Model card (JSON, Markdown or HTML by Accept)", tags=TAGS)
def card(model: str) -> Response[str]:
    return _card(model)


@router.get("/v1/models/<model>/versions/<version>/card", summary="Model card of a version", tags=TAGS)
def card_version(model: str, version: str) -> Response[str]:
    return _card(model, version=version)


@router.get("/v1/models/<model>/labels/<label>/card", summary="Model card of a label", tags=TAGS)
def card_label(model: str, label: str) -> Response[str]:
    return _card(model, label=label)
