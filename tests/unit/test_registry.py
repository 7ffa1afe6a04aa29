"""Registry on moto: publish, resolve, list, manifest, promote, delete, naming rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from maas_models import ModelRef, Registry
from maas_models.errors import (
    ExportMismatch,
    InvalidModelName,
    ModelNotFound,
    PromotionRefused,
    VersionConflict,
)


def test_publish_writes_layout_and_manifest_last(published_ref: Registry, s3_moto: str) -> None:
    s3 = published_ref.s3
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_moto, Prefix="models/ref/1/")["Contents"]}
    assert "models/ref/1/manifest.json" in keys
    assert "models/ref/1/model.tflite" in keys
    assert "models/ref/1/saved_model/saved_model.pb" in keys
    assert "models/ref/1/model.keras" in keys
    assert "models/ref/1/metadata.json" not in keys
    m = published_ref.manifest("ref", 1)
    assert m.raw["schema_version"] == 2
    assert m.name == "ref" and m.version == 1 and m.runtime == "litert"
    assert m.feature_names == [f"f{i}" for i in range(100)]
    assert m.class_labels == [str(i) for i in range(10)]
    assert m.input_spec["shape"] == [None, 100] and m.input_spec["name"] == "features"
    assert m.output_spec["shape"] == [None, 10]
    assert set(m.raw["framework"]) >= {"tensorflow", "keras", "litert"}
    tfl = m.files["model.tflite"]
    assert len(tfl["sha256"]) == 64 and tfl["size"] > 1000
    assert "accuracy" in m.metrics
    assert "expected" not in m.raw["export_check"]


def test_resolve_versions_latest_and_aliases(published_ref: Registry, reference_export: Path) -> None:
    assert published_ref.resolve("ref") == ModelRef("ref", 1, "latest")
    assert published_ref.resolve("ref", 1) == ModelRef("ref", 1)
    assert published_ref.resolve("ref", "1").version == 1
    v2 = published_ref.publish(reference_export, "ref", source="recorded")
    assert v2 == 2
    assert published_ref.resolve("ref", "latest").version == 2
    published_ref.promote("ref", 1, "staging")
    assert published_ref.resolve("ref", "staging") == ModelRef("ref", 1, "staging")
    assert published_ref.aliases("ref") == {"staging": 1}
    assert published_ref.list_models() == [{"name": "ref", "versions": [1, 2], "aliases": {"staging": 1}}]


@pytest.mark.parametrize("spec", [3, "3", "production", "latest"])
def test_unknown_version_or_alias_is_not_found(s3_moto: str, published_ref: Registry, spec: object) -> None:
    if spec == "latest":
        with pytest.raises(ModelNotFound):
            published_ref.resolve("other", spec)  # type: ignore[arg-type]
    else:
        with pytest.raises(ModelNotFound):
            published_ref.resolve("ref", spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["", "Ref", "../etc", "a/b", "ref/../../x", "-ref", "a" * 64, "réf", "ref\n", "ref.", " ref"]
)
def test_bad_names_rejected(s3_moto: str, name: str) -> None:
    reg = Registry(bucket=s3_moto)
    with pytest.raises(InvalidModelName):
        reg.resolve(name)


@pytest.mark.parametrize("spec", [0, -1, "0", "01", "../1", "Prod", "a/b", "x" * 64, True])
def test_bad_versions_and_aliases_rejected(s3_moto: str, spec: object) -> None:
    reg = Registry(bucket=s3_moto)
    with pytest.raises(InvalidModelName):
        reg.resolve("ref", spec)  # type: ignore[arg-type]


def test_delete_keeps_number_and_never_reuses_it(published_ref: Registry, reference_export: Path) -> None:
    assert published_ref.publish(reference_export, "ref", source="recorded") == 2
    published_ref.delete("ref", 2)
    with pytest.raises(ModelNotFound):
        published_ref.resolve("ref", 2)
    assert published_ref.resolve("ref").version == 1
    assert published_ref.publish(reference_export, "ref", source="recorded") == 3


def test_delete_refuses_aliased_version(published_ref: Registry) -> None:
    published_ref.promote("ref", 1, "staging")
    with pytest.raises(VersionConflict):
        published_ref.delete("ref", 1)
    published_ref.delete("ref", 1, force=True)
    assert published_ref.list_models() == []


def test_publish_refuses_nan_export(s3_moto: str, reference_export: Path, tmp_path: Path) -> None:
    """The silent-NaN pitfall: a .tflite whose weights are gone. Here: recorded outputs say NaN-free,
    the tflite is swapped for one that outputs NaN (a model with NaN weights)."""
    bad = tmp_path / "bad"
    shutil.copytree(reference_export, bad)
    meta = orjson.loads((bad / "metadata.json").read_bytes())
    meta["export_check"]["expected"] = {"probabilities": np.full((64, 10), np.nan).tolist()}
    (bad / "metadata.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(ExportMismatch):
        Registry(bucket=s3_moto).publish(bad, "ref", source="recorded")


def test_publish_refuses_mismatch(s3_moto: str, reference_export: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(reference_export, bad)
    meta = orjson.loads((bad / "metadata.json").read_bytes())
    expected = np.asarray(meta["export_check"]["expected"]["probabilities"], dtype=np.float32)
    meta["export_check"]["expected"] = {"probabilities": (expected + 1e-3).tolist()}
    (bad / "metadata.json").write_bytes(orjson.dumps(meta))
    reg = Registry(bucket=s3_moto)
    with pytest.raises(ExportMismatch, match="exceeds"):
        reg.publish(bad, "ref", source="recorded")
    assert reg.list_models() == []


def test_promote_production_gates(
    published_ref: Registry, s3_moto: str, tmp_path: Path, reference_export: Path
) -> None:
    gated = tmp_path / "gated"
    shutil.copytree(reference_export, gated)
    meta = orjson.loads((gated / "metadata.json").read_bytes())
    meta["fairness"] = {
        "groups": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.6}},
        "gaps": {"demographic_parity_difference": 0.3, "equalized_odds_difference": 0.05},
        "gates": {"min_accuracy": 0.0, "max_fairness_gap": 0.1},
    }
    (gated / "metadata.json").write_bytes(orjson.dumps(meta))
    version = published_ref.publish(gated, "ref", source="recorded")
    records: list[dict] = []
    with pytest.raises(PromotionRefused, match="demographic_parity_difference"):
        published_ref.promote("ref", version, "production", audit=records.append)
    assert records == []
    published_ref.promote("ref", version, "staging", audit=records.append)  # gates only for production
    with pytest.raises(PromotionRefused, match="reason"):
        published_ref.promote("ref", version, "production", override=True, reason="  ")
    published_ref.promote(
        "ref",
        version,
        "production",
        override=True,
        reason="accepted by review #12",
        actor="alice",
        audit=records.append,
    )
    assert published_ref.resolve("ref", "production").version == version
    assert len(records) == 1
    rec = records[0]
    assert rec["event"] == "promotion_override" and rec["override"] is True
    assert rec["actor"] == "alice" and rec["reason"] == "accepted by review #12"
    assert any("demographic_parity_difference" in f for f in rec["gate_failures"])
    # default audit sink: a JSON line in the models bucket under audit/promotions/
    published_ref.promote("ref", 1, "production", override=True, reason="rollback", actor="bob")
    objs = published_ref.s3.list_objects_v2(Bucket=s3_moto, Prefix="audit/promotions/")["Contents"]
    assert len(objs) == 1
    body = published_ref.s3.get_object(Bucket=s3_moto, Key=objs[0]["Key"])["Body"].read()
    line = orjson.loads(body.splitlines()[0])
    assert line["actor"] == "bob" and line["version"] == 1 and line["previous_version"] == version


def test_min_accuracy_gate(published_ref: Registry, tmp_path: Path, reference_export: Path) -> None:
    gated = tmp_path / "gated"
    shutil.copytree(reference_export, gated)
    meta = orjson.loads((gated / "metadata.json").read_bytes())
    meta["fairness"] = {"gates": {"min_accuracy": 1.01}}
    (gated / "metadata.json").write_bytes(orjson.dumps(meta))
    version = published_ref.publish(gated, "ref", source="recorded")
    with pytest.raises(PromotionRefused, match="min_accuracy"):
        published_ref.promote("ref", version, "production")


def test_promote_rejects_reserved_and_missing(published_ref: Registry) -> None:
    with pytest.raises(InvalidModelName):
        published_ref.promote("ref", 1, "latest")
    with pytest.raises(ModelNotFound):
        published_ref.promote("ref", 9, "staging")


def test_invalid_metadata_spends_no_version(s3_moto: str, reference_export: Path, tmp_path: Path) -> None:
    from maas_models.errors import ModelCorrupt

    bad = tmp_path / "bad"
    shutil.copytree(reference_export, bad)
    meta = orjson.loads((bad / "metadata.json").read_bytes())
    meta["inputs"] = []
    (bad / "metadata.json").write_bytes(orjson.dumps(meta))
    reg = Registry(bucket=s3_moto)
    with pytest.raises(ModelCorrupt, match="input"):
        reg.publish(bad, "ref", verify=False)
    assert reg.publish(reference_export, "ref", source="recorded") == 1


def test_gaps_with_labels_and_nested_blocks_are_gated_on_their_numbers(
    published_ref: Registry, tmp_path: Path, reference_export: Path
) -> None:
    # maas.rai.fairness reports labels (worst_class) and per-attribute blocks beside the numbers.
    gated = tmp_path / "gated"
    shutil.copytree(reference_export, gated)
    meta = orjson.loads((gated / "metadata.json").read_bytes())
    meta["fairness"] = {
        "gaps": {
            "worst_class": "7",
            "multiclass": "one-vs-rest max",
            "per_attribute": {"group": {"equalized_odds_difference": 0.4}},
            "demographic_parity_difference": 0.01,
        },
        "gates": {"max_fairness_gap": 0.1},
    }
    (gated / "metadata.json").write_bytes(orjson.dumps(meta))
    version = published_ref.publish(gated, "ref", source="recorded")
    with pytest.raises(PromotionRefused, match=r"per_attribute\.group\.equalized_odds_difference 0\.4"):
        published_ref.promote("ref", version, "production")
