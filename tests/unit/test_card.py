"""Model cards: JSON, Markdown, self-contained HTML with plots, content negotiation (maas.rai.card)."""

from __future__ import annotations

import base64
import re

import numpy as np
import orjson
import pytest
from maas.rai.card import CARD_FILES, build_card, negotiate, render_html, render_markdown, write_card_files
from maas.rai.fairness import evaluate

MANIFEST = {
    "schema_version": 1,
    "name": "ref",
    "version": 3,
    "created_at": "2026-11-28T16:00:00Z",
    "framework": {"tensorflow": "2.21.0"},
    "runtime": "litert",
    "inputs": [{"name": "features", "shape": [-1, 4], "feature_names": ["f0", "f1", "f2", "group"]}],
    "outputs": [{"name": "probabilities", "shape": [-1, 2], "class_labels": ["no", "yes"]}],
    "metrics": {
        "accuracy": 0.91,
        "loss": 0.25,
        "per_class": {"no": {"precision": 0.9}, "yes": {"precision": 0.8}},
    },
    "fingerprint": {"sha256": "ab" * 32, "rows": 1000, "features": {}},
    "sensitive_features": ["group"],
}


@pytest.fixture(scope="module")
def card():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.85, y, 1 - y)
    groups = np.array(["a", "b <script>"])[rng.integers(0, 2, 400)]
    fair = evaluate(y, pred, groups, gates={"max_fairness_gap": 0.2}, positive_class=1, attribute="group")
    return build_card(
        manifest=MANIFEST,
        fairness=fair,
        contact="ml-team@example.com",
        training_data={"source": "synthetic", "split": "80/20"},
    )


def test_card_has_every_required_section(card):
    for key in (
        "intended_use",
        "training_data",
        "metrics",
        "fairness",
        "limitations",
        "ethical_considerations",
        "contact",
    ):
        assert card[key], key
    assert card["model"]["name"] == "ref" and card["model"]["version"] == 3
    assert card["training_data"]["rows"] == 1000 and card["training_data"]["source"] == "synthetic"
    assert set(card["fairness"]["gaps"]) == {"demographic_parity_difference", "equalized_odds_difference"}
    assert card["model"]["sensitive_features"] == ["group"]
    orjson.dumps(card)  # JSON-ready


def test_markdown(card):
    md = render_markdown(card)
    for heading in (
        "## Intended use",
        "## Training data",
        "## Metrics",
        "## Fairness",
        "## Limitations",
        "## Ethical considerations",
        "## Contact",
    ):
        assert heading in md
    assert "demographic parity difference" in md and "| a |" in md
    assert "ml-team@example.com" in md


def test_html_is_self_contained_with_plots(card):
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.5], "accuracy": [0.5, 0.8, 0.9]}
    page = render_html(card, history=history, confusion=[[180, 20], [30, 170]])
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3  # training curves, confusion matrix, per-group metrics
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in page.replace("&lt;script", "")  # group names are escaped
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing external
    assert "<link" not in page


def test_write_card_files(card, tmp_path):
    paths = write_card_files(card, tmp_path / "card", confusion=[[1, 0], [0, 1]])
    assert {p.name for p in paths.values()} == set(CARD_FILES.values())
    assert orjson.loads(paths["application/json"].read_bytes()) == card
    assert paths["text/html"].read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("application/json", "application/json"),
        ("text/markdown", "text/markdown"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("*/*", "application/json"),
        ("text/*", "text/markdown"),
        ("text/markdown;q=0.5, text/html;q=0.9", "text/html"),
        ("*/*, application/json;q=0", "text/markdown"),
        ("application/pdf", None),
        ("image/png, text/plain", None),
        ("application/json;q=0", None),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) == expected
