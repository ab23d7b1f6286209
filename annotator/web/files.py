"""Serving stored image files safely."""

from __future__ import annotations

from django.http import FileResponse

# Stored files are served with a type read from their first bytes (what we wrote), never
# from a name someone supplied: a COCO ``file_name`` such as ``x.png.html`` stays a PNG.
MAGIC_TYPES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"DICM", 128, "application/dicom", "dcm"),
)


def stored_file_response(field_file, *, stem: str, attachment: bool) -> FileResponse:
    """A stored image file with a fixed, safe ``Content-Type``; anything unrecognised is
    ``application/octet-stream`` and always an attachment."""
    handle = field_file.open("rb")
    head = handle.read(132)
    handle.seek(0)
    content_type, suffix = "application/octet-stream", "bin"
    for magic, offset, kind, ext in MAGIC_TYPES:
        if head[offset : offset + len(magic)] == magic:
            content_type, suffix = kind, ext
            break
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=attachment or suffix == "bin",
        filename=f"{stem}.{suffix}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response
