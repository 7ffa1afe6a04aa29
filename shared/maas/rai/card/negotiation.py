"""Which card rendering to serve for an ``Accept`` header (RFC 9110 q-values and wildcards)."""

from __future__ import annotations

from collections.abc import Sequence

from maas.rai.card.build import CARD_FILES


def negotiate(accept: str | None, available: Sequence[str] = tuple(CARD_FILES)) -> str | None:
    """The media type to serve for an ``Accept`` header (RFC 9110 q-values, ``*/*``, ``text/*``);
    None means 406. A missing or empty header gets JSON."""
    if accept is None or not accept.strip():
        return (
            "application/json" if "application/json" in available else (available[0] if available else None)
        )
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        offers.append((q, position, media))
    best: tuple[float, int, int, str] | None = None  # (q, specificity, -position, media)
    for q, position, media in offers:
        if q <= 0:
            continue
        for candidate in available:
            if media == candidate:
                spec = 2
            elif media == "*/*":
                spec = 0
            elif media.endswith("/*") and candidate.startswith(media[:-1]):
                spec = 1
            else:
                continue
            # Explicitly refused types (q=0) are never chosen through a wildcard.
            if any(m == candidate and qq <= 0 for qq, _, m in offers):
                continue
            key = (q, spec, -position - (available.index(candidate) if spec == 0 else 0), candidate)
            if best is None or key[:3] > best[:3]:
                best = key
    return best[3] if best else None
