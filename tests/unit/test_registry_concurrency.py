"""Concurrent publishers never get the same version (S3 conditional writes on the version claim)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from maas_models import Registry

PUBLISH = """
import sys
from maas_models import Registry
reg = Registry()
print(",".join(str(reg.publish(sys.argv[1], "ref", source="recorded")) for _ in range(int(sys.argv[2]))))
"""


def test_threads_get_distinct_versions(s3_moto: str, reference_export: Path) -> None:
    versions: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def publish() -> None:
        try:
            reg = Registry(bucket=s3_moto)  # one registry (and client) per publisher
            barrier.wait()
            for _ in range(2):
                versions.append(reg.publish(reference_export, "ref", source="recorded"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(versions) == list(range(1, 13))
    reg = Registry(bucket=s3_moto)
    assert reg.versions("ref") == list(range(1, 13))
    for v in (1, 7, 12):  # every version's manifest matches its own files
        m = reg.manifest("ref", v)
        key = reg.key("ref", v, "model.tflite")
        head = reg.s3.head_object(Bucket=s3_moto, Key=key)
        assert head["ContentLength"] == m.files["model.tflite"]["size"]


def test_processes_get_distinct_versions(s3_moto: str, reference_export: Path) -> None:
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISH, str(reference_export), "3"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    got: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        got.extend(int(v) for v in out.strip().split(","))
    assert sorted(got) == list(range(1, 10))


def test_claim_lost_moves_to_next_number(s3_moto: str, reference_export: Path) -> None:
    """A publisher that sees max=N but finds N+1 already claimed (by a slower one) takes N+2."""
    reg = Registry(bucket=s3_moto)
    assert reg.publish(reference_export, "ref", source="recorded") == 1
    reg.s3.put_object(Bucket=s3_moto, Key=reg.key("ref", 2, "_claim.json"), Body=b"{}")  # in flight
    assert reg.publish(reference_export, "ref", source="recorded") == 3
    assert reg.resolve("ref").version == 3
    assert reg.versions("ref") == [1, 3]  # 2 is claimed but not complete: not a version
