"""Response bodies: JSON (pretty or compact), TSV (flattened, indexed paths), XML, manifests.

TSV follows the current real output (``files__POST_format_tsv_response.tsv``): nested lists are
flattened with indices (``cases.0.samples.0.sample_type``), the header is the sorted union of
every hit's paths including ``id``, missing values are empty cells, lines end with LF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.dom import minidom

MANIFEST_HEADER = ("id", "filename", "md5", "size", "state")
_XML_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def render_json(payload: Any, pretty: bool) -> bytes:
    if pretty:
        return (json.dumps(payload, indent=2) + "\n").encode()
    return json.dumps(payload).encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    # Tabs/newlines inside a value would break the row structure, so they become spaces.
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"cases": [{"samples": [{"x": 1}]}]}`` -> ``{"cases.0.samples.0.x": 1}``."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        items: Iterable[tuple[str, Any]] = ((str(k), v) for k, v in node.items())
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, (dict, list)) and value:
            out.update(flatten(value, path))
        elif isinstance(value, (dict, list)):
            out[path] = None
        else:
            out[path] = value
    return out


def render_tsv(hits: Sequence[Mapping[str, Any]], fallback_columns: Sequence[str] = ()) -> bytes:
    """One header line (sorted flattened paths) plus one line per hit."""
    rows = [flatten(dict(hit)) for hit in hits]
    columns = sorted({key for row in rows for key in row} or {"id", *fallback_columns})
    lines = ["\t".join(columns)]
    lines.extend("\t".join(_cell(row.get(c)) for c in columns) for row in rows)
    return ("\n".join(lines) + "\n").encode()


def _xml_name(key: str) -> str:
    name = _XML_BAD.sub("_", key) or "_"
    return name if name[0].isalpha() or name[0] == "_" else f"_{name}"


def _xml_fill(doc: minidom.Document, parent: minidom.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            element = doc.createElement(_xml_name(str(key)))
            _xml_fill(doc, element, child)
            parent.appendChild(element)
    elif isinstance(value, list):
        for child in value:
            element = doc.createElement("item")
            _xml_fill(doc, element, child)
            parent.appendChild(element)
    elif _cell(value):  # empty text would print <sort></sort>; the real output has <sort/>
        parent.appendChild(doc.createTextNode(_cell(value)))


def render_xml(payload: Mapping[str, Any], pretty: bool) -> bytes:
    """``<?xml version="1.0" ?><response><data><hits><item>...`` as in the real capture."""
    doc = minidom.Document()
    root = doc.createElement("response")
    doc.appendChild(root)
    _xml_fill(doc, root, payload)
    text = doc.toprettyxml(indent="\t") if pretty else doc.toxml()
    return text.encode()


def manifest_row(doc: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        str(doc["file_id"]),
        _cell(doc.get("file_name")),
        _cell(doc.get("md5sum")),
        _cell(doc.get("file_size")),
        _cell(doc.get("state")),
    )


def render_manifest(docs: Iterable[Mapping[str, Any]]) -> bytes:
    """gdc-client manifest: ``id filename md5 size state`` tab-separated, LF line ends."""
    lines = ["\t".join(MANIFEST_HEADER)]
    lines.extend("\t".join(manifest_row(doc)) for doc in docs)
    return ("\n".join(lines) + "\n").encode()
