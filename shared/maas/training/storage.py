"""Tiny helpers over `s3://bucket/key` URIs and local paths, on the model layer's one boto3 client
(`maas_models.s3.s3_client`: one per endpoint and region, standard-mode retries)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from maas_models.s3 import s3_client


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def join(base: str, *parts: str) -> str:
    """Join URI/path segments with single slashes (works for s3:// and local paths)."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        body: bytes = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    return local_path(uri).read_bytes()


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic on one filesystem: a reader sees the old or the new file, never half


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except s3_client().exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return local_path(uri).exists()


def list_files(prefix_uri: str) -> list[str]:
    """Every object (file) under a prefix (directory), as URIs, sorted."""
    return [uri for uri, _ in list_objects(prefix_uri)]


def list_objects(prefix_uri: str) -> list[tuple[str, int]]:
    """Every object (file) under a prefix (directory) with its size in bytes, sorted by URI."""
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri)
        out: list[tuple[str, int]] = []
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(
                (f"s3://{bucket}/{obj['Key']}", int(obj["Size"]))
                for obj in page.get("Contents", [])
                if not obj["Key"].endswith("/")
            )
        return sorted(out)
    root = local_path(prefix_uri)
    if not root.exists():
        return []
    return sorted((str(p), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def size(uri: str) -> int:
    """One object's size in bytes (a HEAD on S3)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    return local_path(uri).stat().st_size


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) for an s3:// URI or a local path: pyarrow's own S3 client for
    ranged Parquet reads and streamed CSV, at the endpoint and region boto3 uses (LocalStack, moto);
    credentials come from the AWS SDK's default chain, which refreshes a Batch job role's."""
    import pyarrow.fs as pafs
    from maas_models.s3lite import endpoint_from_env, region_from_env

    if not is_s3(uri):
        return pafs.LocalFileSystem(), str(local_path(uri))
    endpoint = endpoint_from_env()
    key = (endpoint, region_from_env())
    fs = _arrow_filesystems.get(key)
    if fs is None:
        scheme = "http" if endpoint and endpoint.startswith("http://") else "https"
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme=scheme,
            region=key[1],
        )
        _arrow_filesystems[key] = fs
    return fs, uri.removeprefix("s3://")


_arrow_filesystems: dict[tuple[str | None, str | None], Any] = {}


def download(uri: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().download_file(bucket, key, str(dest))
    else:
        shutil.copyfile(local_path(uri), dest)
    return dest


def upload_dir(src: Path, prefix_uri: str) -> list[str]:
    """Upload every file under src to prefix_uri, returning the written URIs."""
    written: list[str] = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = join(prefix_uri, path.relative_to(src).as_posix())
        upload_file(path, target)
        written.append(target)
    return written


def upload_file(path: Path, target: str) -> None:
    """One local file to an s3:// URI or a local path."""
    if is_s3(target):
        bucket, key = split_s3(target)
        s3_client().upload_file(str(path), bucket, key)
    else:
        dest = local_path(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def delete_prefix(prefix_uri: str) -> None:
    base = prefix_uri.rstrip("/") + "/"
    if is_s3(base):
        bucket, _ = split_s3(base)
        keys = [split_s3(u)[1] for u in list_files(base)]
        for i in range(0, len(keys), 1000):
            s3_client().delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
            )
        return
    shutil.rmtree(local_path(base), ignore_errors=True)
