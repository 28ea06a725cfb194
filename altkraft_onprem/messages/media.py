"""The media library: uploaded images checked, cleaned, resized and stored under
DATA_DIR/media, served at a stable public URL (/p/media/NAME).

Raster images are decoded and re-encoded by Pillow (metadata such as GPS positions goes, and
a file that only claims to be an image is refused); SVG is parsed without entities or
external references and rebuilt from an allowlist of drawing elements, so no script survives.
"""
from __future__ import annotations

import hashlib
import io
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from sqlalchemy import Connection, delete, insert, select

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.config import Settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from .models import media

RASTER = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"),
          "GIF": ("image/gif", "gif"), "WEBP": ("image/webp", "webp")}
CONTENT_TYPES = {ext: ctype for ctype, ext in RASTER.values()} | {"svg": "image/svg+xml"}
MAX_PIXELS = 40_000_000
# Resizing an animation decodes every frame: above this many frame pixels (e.g. 150 frames of
# 1000×1000) the original is kept, unresized, and the upload says so.
MAX_ANIMATION_PIXELS = 150_000_000
# SVG sizes are only numbers in an attribute: anything larger is scaled down to this.
MAX_SVG_SIDE = 10_000
STORED_NAME = re.compile(r"^[A-Za-z0-9_-]{8,40}\.(png|jpg|gif|webp|svg)$")

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)
SVG_ELEMENTS = {
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text",
    "tspan", "defs", "lineargradient", "radialgradient", "stop", "clippath", "mask", "title",
    "desc", "symbol", "use", "pattern", "filter", "fegaussianblur", "feoffset", "feblend",
    "fecolormatrix", "femerge", "femergenode", "feflood", "fecomposite",
}
SVG_ATTRIBUTES = {
    "id", "class", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx", "ry", "d", "points",
    "width", "height", "viewbox", "preserveaspectratio", "fill", "fill-opacity", "fill-rule",
    "stroke", "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
    "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity", "transform",
    "font-family", "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline",
    "letter-spacing", "offset", "stop-color", "stop-opacity", "gradientunits",
    "gradienttransform", "spreadmethod", "fx", "fy", "clip-path", "clip-rule", "mask",
    "patternunits", "patterntransform", "version", "dx", "dy", "rotate", "stddeviation",
    "in", "in2", "result", "mode", "values", "type", "operator", "flood-color", "flood-opacity",
    "filter", "visibility", "display", "color", "style", "href",
}
_UNSAFE_STYLE = re.compile(r"url\s*\((?!\s*['\"]?#)|@import|expression|javascript:|behavior", re.I)


@dataclass(frozen=True)
class Processed:
    data: bytes
    content_type: str
    extension: str
    width: int | None
    height: int | None
    note: str | None = None         # what was done differently from the rule, for the uploader


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def sanitise_svg(data: bytes) -> bytes:
    """An SVG rebuilt from allowed elements and attributes: no scripts, event handlers,
    foreign objects, external references or entities."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ET.ParseError) as exc:
        raise ServiceError("the SVG file cannot be read safely: %(exc)s", "file", exc=exc) from None
    if _local(root.tag) != "svg":
        raise ServiceError("the file is not an SVG image (its root element is not <svg>)", "file")

    def clean(element: ET.Element) -> ET.Element | None:
        name = _local(element.tag)
        if name not in SVG_ELEMENTS:
            return None
        out = ET.Element(f"{{{SVG_NS}}}{_CASED.get(name, name)}")
        for attr, value in element.attrib.items():
            local = _local(attr)
            if local not in SVG_ATTRIBUTES or local.startswith("on"):
                continue
            if local == "href":
                if not value.strip().startswith("#"):
                    continue
                out.set(f"{{{XLINK_NS}}}href" if "xlink" in attr else "href", value)
                continue
            if _UNSAFE_STYLE.search(value):
                continue
            out.set(_CASED.get(local, local), value)
        out.text = element.text if name in {"text", "tspan", "title", "desc"} else None
        for child in element:
            cleaned = clean(child)
            if cleaned is not None:
                cleaned.tail = child.tail if name in {"text", "tspan"} else None
                out.append(cleaned)
        return out

    cleaned = clean(root)
    return ET.tostring(cleaned, encoding="utf-8", xml_declaration=True)


_CASED = {"lineargradient": "linearGradient", "radialgradient": "radialGradient",
          "clippath": "clipPath", "viewbox": "viewBox", "preserveaspectratio": "preserveAspectRatio",
          "gradientunits": "gradientUnits", "gradienttransform": "gradientTransform",
          "spreadmethod": "spreadMethod", "patternunits": "patternUnits",
          "patterntransform": "patternTransform", "stddeviation": "stdDeviation",
          "fegaussianblur": "feGaussianBlur", "feoffset": "feOffset", "feblend": "feBlend",
          "fecolormatrix": "feColorMatrix", "femerge": "feMerge", "femergenode": "feMergeNode",
          "feflood": "feFlood", "fecomposite": "feComposite"}


_LENGTH = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(px)?\s*$")


def _svg_length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    return float(match.group(1)) if match else None


def fit_svg(data: bytes, max_width: int) -> tuple[bytes, int | None, int | None, str | None]:
    """A cleaned SVG whose width/height attributes say at most `max_width` wide (and at most
    MAX_SVG_SIDE high), scaled through its viewBox: (data, width, height, note)."""
    root = SafeET.fromstring(data)
    width, height = _svg_length(root.get("width")), _svg_length(root.get("height"))
    limits = [1.0]
    if width:
        limits.append(max_width / width)
    if height:
        limits.append(MAX_SVG_SIDE / height)
    factor = min(limits)
    if factor >= 1:
        return data, _side(width), _side(height), None
    if root.get("viewBox") is None and width and height:
        root.set("viewBox", f"0 0 {width:g} {height:g}")     # keeps the drawing when scaled
    new_width = max(round(width * factor, 2), 1) if width else None
    new_height = max(round(height * factor, 2), 1) if height else None
    if new_width:
        root.set("width", f"{new_width:g}")
    if new_height:
        root.set("height", f"{new_height:g}")
    said = "×".join(f"{v:g}" if v else "auto" for v in (width, height))
    shown = "×".join(f"{v:g}" if v else "auto" for v in (new_width, new_height))
    note = f"the SVG said {said} pixels; it is shown at {shown}"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), _side(new_width), \
        _side(new_height), note


def _side(value: float | None) -> int | None:
    return max(1, min(round(value), MAX_SVG_SIDE)) if value else None


def looks_like_svg(data: bytes, filename: str) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return filename.lower().endswith(".svg") or head.startswith((b"<?xml", b"<svg", b"<!--"))


def process_image(data: bytes, filename: str, max_width: int) -> Processed:
    """Checks and cleans one uploaded image; resizes images wider than max_width (SVG through
    its size attributes, animations frame by frame)."""
    if not data:
        raise ServiceError("the file is empty", "file")
    if looks_like_svg(data, filename):
        clean, width, height, note = fit_svg(sanitise_svg(data), max_width)
        return Processed(clean, "image/svg+xml", "svg", width, height, note)
    try:
        image = Image.open(io.BytesIO(data))
        image_format = image.format
        if image_format not in RASTER:
            raise ServiceError("%(format)s images are not accepted: use PNG, JPEG, GIF, WebP or SVG",
                               "file", format=image_format or "this")
        if image.width * image.height > MAX_PIXELS:
            raise ServiceError("the image has too many pixels (%(width)s×%(height)s)", "file", width=image.width, height=image.height)
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ServiceError("the file is not a readable PNG, JPEG, GIF, WebP or SVG image (%(exc)s)",
                           "file", exc=exc) from None
    content_type, extension = RASTER[image_format]
    if getattr(image, "is_animated", False):
        return _animation(data, image, image_format, max_width)
    image = ImageOps.exif_transpose(image)
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=85, optimize=True, progressive=True)
    elif image_format == "PNG":
        image.save(out, "PNG", optimize=True)
    elif image_format == "WEBP":
        image.save(out, "WEBP", quality=85)
    else:
        image.save(out, "GIF", optimize=True)
    return Processed(out.getvalue(), content_type, extension, image.width, image.height)


def _animation(data: bytes, image: Image.Image, image_format: str, max_width: int) -> Processed:
    """An animated GIF/WebP/PNG: every frame resized, each frame's duration and the loop count
    kept; too many frame pixels to resize keeps the verified original with a note."""
    content_type, extension = RASTER[image_format]
    if image.width <= max_width:
        return Processed(data, content_type, extension, image.width, image.height)
    frames_count = getattr(image, "n_frames", 1)
    if frames_count * image.width * image.height > MAX_ANIMATION_PIXELS:
        return Processed(data, content_type, extension, image.width, image.height,
                         f"the animation ({frames_count} frames of {image.width}×{image.height}) "
                         f"is too large to resize and was kept at its size; make it at most "
                         f"{max_width} pixels wide for email")
    size = (max_width, max(1, round(image.height * max_width / image.width)))
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(frame.info.get("duration", image.info.get("duration", 100)))
        frames.append(frame.convert("RGBA").resize(size, Image.Resampling.LANCZOS))
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations}
    if "loop" in image.info:            # absent: the animation plays once, as it did
        options["loop"] = image.info["loop"]
    if image_format == "GIF":
        options["disposal"] = 2         # each (whole) frame replaces the last
    elif image_format == "WEBP":
        options["quality"] = 85
    out = io.BytesIO()
    frames[0].save(out, image_format, **options)
    return Processed(out.getvalue(), content_type, extension, size[0], size[1])


# --- the library -----------------------------------------------------------------------------

def media_dir(settings: Settings) -> Path:
    return settings.data_dir / "media"


def public_url(settings: Settings, stored_name: str) -> str:
    return f"{settings['server.public_url']}/p/media/{stored_name}"


def _out(settings: Settings, row: Any) -> dict[str, Any]:
    item = dict(row)
    item["url"] = public_url(settings, item["stored_name"])
    return item


def add_media(conn: Connection, settings: Settings, actor: Actor, filename: str, data: bytes) -> dict[str, Any]:
    """Stores an uploaded image (the same image uploaded twice is stored once)."""
    limit = settings["messages.upload_max_mb"] * 1024 * 1024
    if len(data) > limit:
        raise ServiceError("the file is larger than %(messages_upload_max_mb)s MB", "file", messages_upload_max_mb=settings['messages.upload_max_mb'])
    processed = process_image(data, filename or "", settings["messages.image_max_width"])
    digest = hashlib.sha256(processed.data).hexdigest()
    found = conn.execute(select(media).where(media.c.sha256 == digest)).mappings().first()
    if found is not None:
        return {**_out(settings, found), "note": processed.note}
    stored_name = f"{secrets.token_urlsafe(12)}.{processed.extension}"
    folder = media_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{stored_name}.part"
    temporary.write_bytes(processed.data)
    temporary.replace(folder / stored_name)
    name = Path(filename or "image").name[:255] or "image"
    media_id = conn.execute(insert(media).values(
        name=name, stored_name=stored_name, content_type=processed.content_type,
        width=processed.width, height=processed.height, size=len(processed.data), sha256=digest,
        created_at=utcnow(), created_by=actor.label)).inserted_primary_key[0]
    record(conn, actor, "media.upload", "media", media_id, name=name, size=len(processed.data))
    return {**get_media(conn, settings, media_id), "note": processed.note}


def list_media(conn: Connection, settings: Settings) -> list[dict[str, Any]]:
    rows = conn.execute(select(media).order_by(media.c.id.desc())).mappings()
    return [_out(settings, row) for row in rows]


def get_media(conn: Connection, settings: Settings, media_id: int) -> dict[str, Any]:
    row = conn.execute(select(media).where(media.c.id == media_id)).mappings().first()
    if row is None:
        raise NotFound("media item %(media_id)s does not exist", "media_id", media_id=media_id)
    return _out(settings, row)


def delete_media(conn: Connection, settings: Settings, actor: Actor, media_id: int) -> None:
    """Removes an image from the library; messages already sent keep pointing at a 404."""
    item = get_media(conn, settings, media_id)
    conn.execute(delete(media).where(media.c.id == media_id))
    (media_dir(settings) / item["stored_name"]).unlink(missing_ok=True)
    record(conn, actor, "media.delete", "media", media_id, name=item["name"])


def stored_file(settings: Settings, stored_name: str) -> tuple[Path, str] | None:
    """(path, content type) of a stored file, or None for names we never hand out."""
    if not STORED_NAME.match(stored_name):
        return None
    path = media_dir(settings) / stored_name
    if not path.is_file():
        return None
    return path, CONTENT_TYPES[stored_name.rsplit(".", 1)[1]]
