"""The spec's `code` section and the dataset fields of the builder contract: defaults, a named error
for each bad field, and the source tarball (reproducible packing, upload, sha256 verification)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from maas.training import source
from maas.training.source import CodeError
from maas.training.spec import SpecError, parse_spec

SCRIPT = {"model_name": "digits", "code": {"source_dir": "examples/digits_cnn", "entry_point": "train.py"}}


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return info.value.errors


def test_a_script_needs_no_dataset_and_takes_free_form_hyperparameters() -> None:
    spec = parse_spec({**SCRIPT, "hyperparameters": {"epochs": 3, "layers": [64, 32], "note": "x"}})
    assert spec.dataset is None and spec.code is not None and not spec.code.is_builder
    assert spec.hyperparameters == {"epochs": 3, "layers": [64, 32], "note": "x"}
    assert spec.code.checkpoint_sync_seconds == 10 and spec.code.save_freq == "epoch"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {**SCRIPT, "code": {"source_dir": "x", "entry_point": "../train.py"}},
            "code.entry_point: must be a script",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "x", "entry_point": "train"}},
            "code.entry_point: must be a script",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "x", "entry_point": "a.b:"}},
            "code.entry_point: must be a script",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "s3://b/code.zip", "entry_point": "t.py"}},
            "code.source_dir: an s3://",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "s3://bkt/c.tar.gz", "entry_point": "t.py"}},
            "code.sha256: required",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "x", "entry_point": "t.py", "sha256": "abc"}},
            "code.sha256: must be 64",
        ),
        (
            {**SCRIPT, "code": {"source_dir": "x", "entry_point": "t.py", "requirements": "/etc/r.txt"}},
            "code.requirements",
        ),
        ({**SCRIPT, "code": {"source_dir": "x", "entry_point": "t.py", "save_freq": 0}}, "code.save_freq"),
        (
            {
                **SCRIPT,
                "code": {"source_dir": "x", "entry_point": "t.py", "channels": {"train": "s3://b/x/"}},
            },
            "code.channels",
        ),
        ({"model_name": "m", "code": {"source_dir": "x", "entry_point": "m:build"}}, "dataset: required"),
        (
            {"model_name": "m", "dataset": {"uri": "s3://bkt/a/", "format": "images"}},
            "dataset.format: 'images' data needs",
        ),
        (
            {
                "model_name": "m",
                "dataset": {"uri": "a.csv", "label_column": "y", "format": "tfrecord"},
                "code": {"source_dir": "x", "entry_point": "m:build"},
            },
            "dataset.tfrecord_features: required",
        ),
        (
            {
                "model_name": "m",
                "dataset": {
                    "uri": "a.csv",
                    "label_column": "y",
                    "text_column": "t",
                    "feature_columns": ["a"],
                },
                "code": {"source_dir": "x", "entry_point": "m:build"},
            },
            "dataset.text_column",
        ),
    ],
)
def test_each_bad_code_field_is_named(doc: dict[str, Any], message: str) -> None:
    assert any(e.startswith(message) for e in errors(doc)), errors(doc)


def test_images_need_no_label_column_but_rows_still_do() -> None:
    spec = parse_spec(
        {
            "model_name": "m",
            "dataset": {"uri": "s3://bkt/img/", "format": "images", "image_size": [8, 8]},
            "code": {"source_dir": "x", "entry_point": "m:build"},
        }
    )
    assert spec.rows.image_size == (8, 8) and spec.rows.label_column is None
    assert "dataset.label_column: required" in errors({"model_name": "m", "dataset": {"uri": "a.csv"}})


def test_packing_is_reproducible_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "pkg" / "m.py").write_text("X = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    first = source.pack(tmp_path)
    (tmp_path / "train.py").touch()  # a new mtime, the same bytes
    assert source.pack(tmp_path) == first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        assert tar.getnames() == ["pkg/m.py", "train.py"]


def test_upload_then_fetch_verifies_the_sha256(s3_moto: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    spec = parse_spec({"model_name": "m", "code": {"source_dir": str(src), "entry_point": "train.py"}})
    assert spec.code is not None
    sent = source.upload(spec.code, source.code_prefix(None, s3_moto, "m"))
    assert sent.source_dir.startswith(f"s3://{s3_moto}/checkpoints/m/code/source-") and sent.sha256
    root, digest = source.fetch(sent, tmp_path / "run")
    assert digest == sent.sha256 and (root / "train.py").read_text() == "print('hi')\n"

    tampered = sent.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(CodeError, match=r"^code\.sha256: .* has sha256 [0-9a-f]{64}, the spec says 0{64}"):
        source.fetch(tampered, tmp_path / "run2")
    missing = sent.model_copy(update={"entry_point": "main.py"})
    with pytest.raises(CodeError, match=r"^code\.entry_point: no file 'main\.py'"):
        source.fetch(missing, tmp_path / "run3")


def test_a_failing_requirements_install_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("this is not a requirement !!!\n")
    spec = parse_spec(
        {
            "model_name": "m",
            "code": {"source_dir": str(tmp_path), "entry_point": "t.py", "requirements": "requirements.txt"},
        }
    )
    assert spec.code is not None
    with pytest.raises(CodeError, match=r"^code\.requirements: pip could not install requirements\.txt"):
        source.install_requirements(spec.code, tmp_path, tmp_path / "site")
