"""Byte transport for batch scoring: ranged/streamed reads and all-or-nothing writes.

Reads never hold a whole object: text formats stream a ranged GET in blocks cut on line ends, Parquet
reads footer and column chunks by range, ``.npy`` reads row ranges. Writes go through a multipart
upload that is completed only by ``commit()``; until then nothing is visible at the destination key,
and ``abort()`` leaves nothing behind. Local-file variants run the same code paths (benchmarks, tests).
Small JSON objects (reports, markers, plans) are read and written by ``maas.batch.objects``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from maas.batch.objects import is_precondition_failed

PART_BYTES = 8 * 1024 * 1024  # S3 multipart parts must be >= 5 MiB (except the last)
UPLOADS_IN_FLIGHT = 2  # parts uploading in the background (memory: these parts + the buffer)
NET_CHUNK = 1024 * 1024


class InputChanged(RuntimeError):
    """The input object was replaced while it was being read (its ETag no longer matches)."""


class Source(Protocol):
    size: int

    def read_range(self, start: int, end: int) -> bytes: ...

    def iter_range(self, start: int, end: int) -> Iterator[bytes]: ...

    def open(self) -> Any:
        """A seekable binary file (pyarrow accepts Python files and its own NativeFile)."""
        ...


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def tell(self) -> int: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class S3Source:
    """One version of one S3 object, read by byte ranges (pinned by VersionId, else by ETag)."""

    def __init__(
        self, s3: Any, bucket: str, key: str, *, size: int, etag: str | None, version_id: str | None
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.size, self.etag, self.version_id = size, etag, version_id

    @classmethod
    def head(cls, s3: Any, bucket: str, key: str, version_id: str | None = None) -> tuple[S3Source, dict]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            kwargs["VersionId"] = version_id
        meta = s3.head_object(**kwargs)
        src = cls(
            s3,
            bucket,
            key,
            size=int(meta["ContentLength"]),
            etag=str(meta.get("ETag", "")).strip('"') or None,
            version_id=meta.get("VersionId") if meta.get("VersionId") not in (None, "null") else None,
        )
        return src, meta

    def _get(self, start: int, end: int) -> Any:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        elif self.etag:
            kwargs["IfMatch"] = f'"{self.etag}"'
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except ClientError as exc:
            if is_precondition_failed(exc):
                raise InputChanged(f"s3://{self.bucket}/{self.key} changed while it was read") from exc
            raise

    def read_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        data: bytes = self._get(start, end).read()
        return data

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        end = min(end, self.size)
        if end <= start:
            return
        body = self._get(start, end)
        try:
            yield from body.iter_chunks(chunk_size=NET_CHUNK)
        finally:
            body.close()

    def open(self) -> BinaryIO:
        return RangeFile(self)  # type: ignore[return-value]


class LocalSource:
    """A local file with the Source interface (benchmarks, tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size

    def read_range(self, start: int, end: int) -> bytes:
        with self.path.open("rb") as fh:
            fh.seek(start)
            return fh.read(max(0, min(end, self.size) - start))

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        end = min(end, self.size)
        with self.path.open("rb") as fh:
            fh.seek(start)
            pos = start
            while pos < end:
                chunk = fh.read(min(NET_CHUNK, end - pos))
                if not chunk:
                    break
                pos += len(chunk)
                yield chunk

    def open(self) -> Any:
        import pyarrow as pa

        return pa.OSFile(str(self.path))  # native reads (not mmap: mapped pages would count as RSS)


class RangeFile(io.RawIOBase):
    """A seekable read-only file over ranged GETs, with a small read-ahead (for pyarrow.parquet)."""

    READAHEAD = 1024 * 1024

    def __init__(self, source: S3Source) -> None:
        super().__init__()
        self.source = source
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self.pos = offset
        elif whence == io.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = self.source.size + offset
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.source.size - self.pos
        size = max(0, min(size, self.source.size - self.pos))
        if size == 0:
            return b""
        lo, hi = self.pos - self._buf_start, self.pos - self._buf_start + size
        if lo >= 0 and hi <= len(self._buf):
            data = self._buf[lo:hi]
        elif size >= self.READAHEAD:
            data = self.source.read_range(self.pos, self.pos + size)
        else:
            self._buf = self.source.read_range(self.pos, self.pos + self.READAHEAD)
            self._buf_start = self.pos
            data = self._buf[:size]
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def iter_line_blocks(chunks: Iterator[bytes], block_bytes: int) -> Iterator[bytes]:
    """Regroup a byte stream into blocks of about ``block_bytes`` that each end on a line end.

    The last block may lack a trailing newline. Memory: about two blocks.
    """
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) >= block_bytes:
            cut = buf.rfind(b"\n")
            if cut >= 0:
                yield bytes(buf[: cut + 1])
                del buf[: cut + 1]
    if buf:
        yield bytes(buf)


class S3MultipartSink:
    """Writes an object through a multipart upload that only ``commit()`` makes visible."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.content_type = content_type
        self.part_bytes = part_bytes
        self._buf = bytearray()
        self._pos = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: list[Future[dict[str, Any]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:  # e.g. a format writer flushing on garbage collection after an abort
            raise ValueError(f"write to s3://{self.bucket}/{self.key} after it was committed or aborted")
        n = len(data)
        self._buf += data
        self._pos += n
        if len(self._buf) >= self.part_bytes:
            self._flush_part()
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        """No-op: parts are uploaded as they fill (pyarrow calls flush on its sink)."""

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """pyarrow closes its sink when a writer closes; publishing is ``commit()``'s job."""

    def _flush_part(self) -> None:
        """Upload the buffer as the next part, in the background (at most UPLOADS_IN_FLIGHT at once)."""
        if self._upload_id is None:
            self._upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
            )["UploadId"]
            self._pool = ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT, thread_name_prefix="maas-upload")
        assert self._pool is not None
        number = len(self._parts) + len(self._pending) + 1
        self._pending.append(self._pool.submit(self._upload, number, bytes(self._buf)))
        self._buf.clear()
        while len(self._pending) > UPLOADS_IN_FLIGHT:
            self._parts.append(self._pending.pop(0).result())

    def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        resp = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def _drain(self) -> None:
        try:
            while self._pending:
                self._parts.append(self._pending.pop(0).result())
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def commit(self) -> None:
        if self.closed:
            return
        if self._upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buf), ContentType=self.content_type
            )
        else:
            if self._buf:
                self._flush_part()
            self._drain()
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buf.clear()
        self.closed = True

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._buf.clear()
        with contextlib.suppress(Exception):
            self._drain()
        if self._upload_id is not None:
            # on failure the bucket's lifecycle rule for incomplete uploads cleans up
            with contextlib.suppress(ClientError):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)


class LocalFileSink:
    """A local file written under a temporary name and renamed into place by ``commit()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part")
        self._fh: BinaryIO | None = self._tmp.open("wb")
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._fh is None:
            raise ValueError(f"write to {self.path} after it was committed or aborted")
        return self._fh.write(data)

    def tell(self) -> int:
        assert self._fh is not None
        return self._fh.tell()

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def commit(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.path)
        self.closed = True

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._tmp.unlink(missing_ok=True)
        self.closed = True
