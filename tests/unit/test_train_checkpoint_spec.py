"""A checkpoint (or a finished run) written by a different spec is refused, not resumed "anyway".

Two specs share checkpoints only through an explicit `checkpoint_uri` (the default one is per run id,
and the run id is the spec's digest or the Batch job's id). Resuming there would continue another
model's weights and optimizer state, or skip training because another run was published. The refusal
happens before TensorFlow is imported, so these tests need none.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from maas.training.entrypoint import main
from maas.training.spec import parse_spec
from maas.training.trainer import CheckpointMismatch, run


def spec_doc(tmp_path: Path, epochs: int = 3) -> dict[str, object]:
    return {
        "model_name": "ref",
        "dataset": {"uri": str(tmp_path / "missing.csv"), "label_column": "label"},
        "training": {"epochs": epochs},
        "checkpoint_uri": str(tmp_path / "ckpt") + "/",
    }


def plant(tmp_path: Path, name: str, state: dict[str, object]) -> None:
    (tmp_path / "ckpt").mkdir(exist_ok=True)
    (tmp_path / "ckpt" / name).write_bytes(orjson.dumps(state))


@pytest.mark.parametrize("marker", ["latest.json", "published.json"])
def test_a_checkpoint_of_another_spec_is_refused(tmp_path: Path, marker: str) -> None:
    other = parse_spec(spec_doc(tmp_path, epochs=9))
    plant(tmp_path, marker, {"epoch": 2, "path": "epoch-0002/", "spec_sha256": other.digest(), "version": 1})
    spec = parse_spec(spec_doc(tmp_path))
    with pytest.raises(CheckpointMismatch) as info:
        run(spec, install_sigterm=False)
    message = str(info.value)
    assert other.digest()[:12] in message and spec.digest()[:12] in message
    assert "checkpoint_uri" in message  # says what to do


def test_the_entrypoint_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant(tmp_path, "latest.json", {"epoch": 1, "path": "epoch-0001/", "spec_sha256": "0" * 64})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_doc(tmp_path)))
    assert main(["--spec", str(path)]) == 2
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "invalid_checkpoint" and "different spec" in summary["errors"][0]


def test_the_same_spec_is_not_refused(tmp_path: Path) -> None:
    """Its own published run: nothing to do (and no TensorFlow)."""
    spec = parse_spec(spec_doc(tmp_path))
    plant(tmp_path, "published.json", {"version": 4, "promoted": False, "spec_sha256": spec.digest()})
    result = run(spec, install_sigterm=False)
    assert result.status == "already_published" and result.version == 4
