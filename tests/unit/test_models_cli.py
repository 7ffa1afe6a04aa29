"""`maas models ...` end to end on moto (in-process through maas.cli.main, and --help in a subprocess)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from maas.cli import main
from maas_models import Registry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "sub", ["", "list", "show", "import", "publish", "promote", "delete", "export-reference"]
)
def test_every_subcommand_has_help(sub: str) -> None:
    argv = [sys.executable, "-m", "maas", "models", *([sub] if sub else []), "--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: maas models" in proc.stdout


def test_publish_list_show_promote_delete(
    s3_moto: str, reference_export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "publish",
        str(reference_export),
        "--name",
        "ref",
        "--source",
        "recorded",
        "--promote",
        "staging",
        "--json",
    )
    assert code == 0 and orjson.loads(out) == {"alias": "staging", "name": "ref", "version": 1}
    code, out, _ = run(capsys, "publish", str(reference_export), "--name", "ref", "--source", "recorded")
    assert code == 0 and out.strip() == "published ref version 2"

    code, out, _ = run(capsys, "list", "--json")
    assert orjson.loads(out) == [{"name": "ref", "versions": [1, 2], "aliases": {"staging": 1}}]
    code, out, _ = run(capsys, "list")
    assert "ref" in out and "1,2" in out and "staging=1" in out

    code, out, _ = run(capsys, "show", "ref", "staging", "--json")
    shown = orjson.loads(out)
    assert shown["version"] == 1 and shown["aliases"] == ["staging"] and shown["runtime"] == "litert"
    code, out, _ = run(capsys, "show", "ref")
    assert "version 2" in out and "features f0, f1" in out

    code, out, _ = run(capsys, "promote", "ref", "2", "production", "--actor", "ci", "--json")
    assert code == 0 and orjson.loads(out)["version"] == 2 and orjson.loads(out)["by"] == "ci"

    code, _, err = run(capsys, "delete", "ref", "2")
    assert code == 1 and "VersionConflict" in err
    code, out, _ = run(capsys, "delete", "ref", "2", "--force")
    assert code == 0 and "deleted ref version 2" in out
    assert Registry(bucket=s3_moto).list_models() == [
        {"name": "ref", "versions": [1], "aliases": {"staging": 1}}
    ]


def test_promotion_refused_and_override(
    s3_moto: str, reference_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gated = tmp_path / "gated"
    shutil.copytree(reference_export, gated)
    meta = orjson.loads((gated / "metadata.json").read_bytes())
    meta["fairness"] = {"gaps": {"demographic_parity_difference": 0.4}, "gates": {"max_fairness_gap": 0.1}}
    (gated / "metadata.json").write_bytes(orjson.dumps(meta))
    assert run(capsys, "publish", str(gated), "--name", "fair", "--source", "recorded")[0] == 0
    code, out, _ = run(capsys, "promote", "fair", "1", "production", "--json")
    err = orjson.loads(out)
    assert code == 1 and err["type"] == "PromotionRefused" and err["status"] == 409
    assert "demographic_parity_difference" in err["error"]
    code, _, errtext = run(capsys, "promote", "fair", "1", "production", "--override")
    assert code == 1 and "reason" in errtext
    code, out, _ = run(
        capsys, "promote", "fair", "1", "production", "--override", "--reason", "pilot", "--actor", "alice"
    )
    assert code == 0 and "fair@production -> version 1" in out


def test_errors_are_clean(s3_moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "nope")
    assert code == 1 and "ModelNotFound" in err
    code, out, _ = run(capsys, "show", "../etc", "--json")
    assert code == 1 and orjson.loads(out)["type"] == "InvalidModelName"
    code, _, err = run(capsys, "publish", str(tmp_path), "--name", "x")
    assert code == 1 and "metadata.json" in err
