"""Pages from Jinja2 templates, autoescaped: everything users pushed (names, labels,
annotations, history commands) is text to show, never markup."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup, escape

NOTHING = "\u2013"  # an en dash: no value
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_size(size: int | None) -> str:
    """Decimal units, as docker and podman print image sizes."""
    if size is None:
        return NOTHING
    value = float(size)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def exact_time(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str | None) -> float | None:
    """An ISO 8601 time (as the collector's status gives it) in seconds; None if it is not
    one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def relative_time(moment: float | None, now: float) -> str:
    if moment is None:
        return NOTHING
    seconds = now - moment
    future = seconds < 0
    seconds = abs(seconds)
    for limit, size, unit in ((60, 1, "second"), (3600, 60, "minute"), (86400, 3600, "hour"),
                              (86400 * 30, 86400, "day"), (86400 * 365, 86400 * 30, "month"),
                              (float("inf"), 86400 * 365, "year")):
        if seconds < limit:
            count = int(seconds // size)
            if unit == "second" and count < 10:
                return "just now"
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return exact_time(moment)


def short_digest(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}" if hex_part else digest


_DIGEST = re.compile(r"&#34;((?:sha256|sha384|sha512):[0-9a-f]{32,128})&#34;")


def linked_json(document: Any, links: dict[str, str]) -> Markup:
    """`document` pretty-printed and escaped, each digest with a page linked to it."""
    text = str(escape(json.dumps(document, indent=2, ensure_ascii=False)))

    def link(found: re.Match[str]) -> str:
        url = links.get(found.group(1))
        if url is None:
            return found.group(0)
        return f'&#34;<a href="{escape(url)}">{found.group(1)}</a>&#34;'

    return Markup(_DIGEST.sub(link, text))


# An image's config media type is what the referrers API calls its artifact type; a
# person reading a list of tags wants to see "image" there instead.
_IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                            "application/vnd.docker.container.image.v1+json"})
_KINDS = {"application/vnd.oci.image.manifest.v1+json": "image",
          "application/vnd.docker.distribution.manifest.v2+json": "image",
          "application/vnd.oci.image.index.v1+json": "index",
          "application/vnd.docker.distribution.manifest.list.v2+json": "index"}


def kind_of(media_type: str | None, artifact_type: str | None) -> str:
    """What a manifest is, in a word where one fits: image, index, or its artifact type."""
    if artifact_type and artifact_type not in _IMAGE_CONFIGS:
        return artifact_type
    if not media_type:
        return NOTHING
    return _KINDS.get(media_type, media_type.rsplit("/", 1)[-1])


def from_json(text: str) -> dict[str, Any]:
    """A JSON object the index stored (annotations); anything else is no annotations."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_page(url: str, number: int) -> str:
    """`url` (a UI URL, perhaps with a query) asking for page `number`."""
    return f"{url}{'&' if '?' in url else '?'}page={number}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dockyard.ui", "templates"),
        autoescape=True,
        # The collector's status is a document whose keys depend on its state.
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=human_size, exact_time=exact_time, iso_time=iso_time,
                       short=short_digest, fromjson=from_json,
                       epoch=epoch)
    env.globals.update(kind_of=kind_of)
    env.globals.update(relative_time=relative_time, with_page=with_page)
    return env
