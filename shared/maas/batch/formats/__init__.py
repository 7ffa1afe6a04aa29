"""Batch file formats: CSV, JSON Lines, Parquet, .npy, .npz and one image file behind one interface
(``Format``)."""

from __future__ import annotations

from maas.batch.formats.base import Format, Writer
from maas.batch.formats.csv import CsvFormat
from maas.batch.formats.image import ImageFormat
from maas.batch.formats.jsonl import JsonlFormat
from maas.batch.formats.npy import NpyFormat
from maas.batch.formats.npz import NpzFormat
from maas.batch.formats.parquet import ParquetFormat

_FORMATS: dict[str, type[Format]] = {
    "csv": CsvFormat,
    "jsonl": JsonlFormat,
    "parquet": ParquetFormat,
    "npy": NpyFormat,
    "npz": NpzFormat,
    "image": ImageFormat,
}


def get_format(name: str) -> Format:
    """A fresh format object (formats keep per-job state while assembling)."""
    return _FORMATS[name]()


__all__ = [
    "CsvFormat",
    "Format",
    "ImageFormat",
    "JsonlFormat",
    "NpyFormat",
    "NpzFormat",
    "ParquetFormat",
    "Writer",
    "get_format",
]
