"""The GDC routes as plain functions from a parsed request to a ``Response`` (no sockets here).

``server.py`` owns HTTP plumbing and fault injection; this module owns what each route answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from histo_renn_dagster.core.errors import GDCQueryError
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.downloads import Downloads, manifest_response
from histo_renn_dagster.emulator.formats import render_tsv, render_xml
from histo_renn_dagster.emulator.query import (
    Endpoint,
    envelope,
    group_schema,
    parse_search,
    run_search,
    single_entity,
)
from histo_renn_dagster.emulator.responses import Response, error, json_response, timestamp

SEARCH_ENDPOINTS = ("files", "cases", "projects", "annotations")


@dataclass(frozen=True)
class Request:
    method: str
    route: str  # path without query, /v0 prefix or trailing slash
    params: Mapping[str, Any]
    ids: tuple[str, ...]  # ids from a POST body (``ids``), for /data and /manifest
    headers: Mapping[str, str]
    legacy: bool = False

    @property
    def token_sent(self) -> bool:
        return bool(self.headers.get("x-auth-token", "").strip())


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """A POST body as parameters: JSON object or urlencoded form (curl's default)."""
    if not raw.strip():
        return {}
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type.lower() or text.lstrip().startswith("{"):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as err:
            raise GDCQueryError(f"request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise GDCQueryError("request body must be a JSON object")
        return body
    form = parse_qs(text, keep_blank_values=True)
    out: dict[str, Any] = {k: v[-1] for k, v in form.items()}
    if "ids" in form:
        out["ids"] = form["ids"]
    return out


def id_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    ids = [part.strip() for item in items for part in str(item).split(",")]
    return tuple(dict.fromkeys(i for i in ids if i))  # unique, order kept


def _status_body(catalogue: Catalogue) -> dict[str, Any]:
    body: dict[str, Any] = {
        "commit": hashlib.sha1(f"{catalogue.name}|{catalogue.data_release}".encode()).hexdigest(),
        "data_release": catalogue.data_release,
    }
    match = re.match(r"Data Release (\d+)\.(\d+)\s*-\s*(.+)$", catalogue.data_release)
    if match:
        try:
            day = datetime.strptime(match.group(3).strip(), "%B %d, %Y").date().isoformat()
        except ValueError:
            day = None
        body["data_release_version"] = {
            "major": int(match.group(1)),
            "minor": int(match.group(2)),
            "release_date": day,
        }
    body.update({"status": "OK", "tag": "histo-renn-emulator", "version": 1})
    return body


class GDCRoutes:
    """Answers every route for one catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.downloads = Downloads(catalogue)
        self.endpoints: dict[str, Endpoint] = {}
        specs: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "files": ("file_id", catalogue.files),
            "cases": ("case_id", catalogue.cases),
            "projects": ("project_id", catalogue.projects),
            "annotations": ("annotation_id", []),
        }
        for name, (id_field, docs) in specs.items():
            is_files = name == "files"
            groups, nested = group_schema(docs, ("file_size",) if is_files else ())
            self.endpoints[name] = Endpoint(
                name,
                id_field,
                docs,
                complete=catalogue.complete_file if is_files else None,
                lazy_fields=("md5sum", "file_size") if is_files else (),
                groups=groups,
                nested=nested,
            )
        self._empty = {
            n: Endpoint(n, e.id_field, [], groups=e.groups) for n, e in self.endpoints.items()
        }
        self._case_index = {c["case_id"]: c for c in catalogue.cases}
        self._project_index = {p["project_id"]: p for p in catalogue.projects}

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request: Request, *, ignore_range: bool = False) -> Response:
        try:
            return self._dispatch(request, ignore_range)
        except GDCQueryError as err:
            return error(400, str(err))

    def _dispatch(self, request: Request, ignore_range: bool) -> Response:
        parts = [p for p in request.route.split("/") if p]
        if request.method == "HEAD":
            if parts and parts[0] == "data":
                return error(400, "HEAD is not supported on /data; use GET")
            return error(405, f"HEAD is not supported on {request.route}")
        if not parts:
            return error(404, "no endpoint at /")
        head, rest = parts[0], parts[1:]
        if request.legacy:
            if head in SEARCH_ENDPOINTS and not rest:
                return self._search(self._empty[head], request)
            return error(404, "the GDC API no longer serves Legacy Archive files")
        if head == "status" and not rest:
            return json_response(200, _status_body(self.catalogue), pretty=True)
        if head in SEARCH_ENDPOINTS:
            endpoint = self.endpoints[head]
            if not rest:
                return self._search(endpoint, request)
            if rest == ["_mapping"]:
                return json_response(200, self._mapping(endpoint))
            if head == "files" and rest[0] == "versions":
                return self._versions(id_list(rest[1:]) or request.ids)
            if len(rest) == 1:
                return self._single(endpoint, rest[0], request)
        if head == "data":
            ids = id_list(rest) if rest else request.ids
            if request.method == "POST" and not rest and not ids:
                return error(400, "Pass in a list of uuids")
            if len(rest) == 1 and "," not in rest[0]:  # a comma list is a bundle, even of one
                return self.downloads.download(
                    rest[0],
                    request.headers.get("range"),
                    token_sent=request.token_sent,
                    ignore_range=ignore_range,
                )
            plain = "tarfile" in request.params
            return self.downloads.bundle(ids, token_sent=request.token_sent, plain=plain)
        if head == "manifest":
            ids = id_list(rest) if rest else request.ids
            return self.downloads.manifest_for(ids, token_sent=request.token_sent)
        return error(404, f"no endpoint at {request.route}")

    # -- search ---------------------------------------------------------------------------------

    def _search(self, endpoint: Endpoint, request: Request) -> Response:
        spec = parse_search(request.params, endpoint.name)
        result = run_search(endpoint, spec)
        if spec.return_type == "manifest":
            if endpoint.name != "files":
                raise GDCQueryError(
                    f"return_type=manifest is only valid on /files, not /{endpoint.name}"
                )
            docs = [self.catalogue.complete_file(d) for d in result.matched]
            return manifest_response(docs)
        if spec.return_type not in (None, "json"):
            raise GDCQueryError(f"return_type must be 'manifest', got {spec.return_type!r}")
        if spec.format == "TSV":
            disposition = f"attachment; filename={endpoint.name}.{timestamp()}.tsv"
            return Response(
                200,
                (
                    ("Content-Type", "text/tab-separated-values"),
                    ("Content-Disposition", disposition),
                ),
                render_tsv(result.hits, spec.fields),
            )
        if spec.format == "XML":
            return Response(
                200,
                (("Content-Type", "application/xml"),),
                render_xml(envelope(result), spec.pretty),
            )
        return json_response(200, envelope(result), spec.pretty)

    def _single(self, endpoint: Endpoint, doc_id: str, request: Request) -> Response:
        if endpoint.name == "files":
            doc = self.catalogue.file(doc_id)
        elif endpoint.name == "cases":
            doc = self._case_index.get(doc_id)
        elif endpoint.name == "projects":
            doc = self._project_index.get(doc_id)
        else:
            doc = None
        if doc is None:
            return error(404, f"{doc_id} not found in {endpoint.name}")
        spec = parse_search(request.params, endpoint.name)
        return json_response(200, single_entity(endpoint, doc, spec), spec.pretty)

    def _mapping(self, endpoint: Endpoint) -> dict[str, Any]:
        fields = sorted(
            f"{group}.{key}" if group else key
            for group, keys in endpoint.groups.items()
            for key in keys
        )
        if endpoint.name == "files":
            fields = sorted({*fields, "md5sum", "file_size"})
        mapping = {
            f"{endpoint.name}.{f}": {
                "doc_type": endpoint.name,
                "field": f,
                "full": f"{endpoint.name}.{f}",
                "type": "keyword",
                "description": "",
            }
            for f in fields
        }
        return {
            "_mapping": mapping,
            "defaults": list(endpoint.groups.get("", ())),
            "expand": sorted(g for g in endpoint.groups if g),
            "fields": fields,
            "multi": [],
            "nested": list(endpoint.nested),
        }

    def _versions(self, ids: Sequence[str]) -> Response:
        out = []
        for file_id in ids:
            doc = self.catalogue.file(file_id)
            if doc is None:
                return error(404, f"{file_id} not found in files")
            full = self.catalogue.complete_file(doc)
            release = str(full.get("data_release", "")).split(" - ")[-1]
            row = {
                "id": file_id,
                "filename": full["file_name"],
                "version": full.get("version", "1"),
                "md5": full["md5sum"],
                "size": full["file_size"],
                "state": full.get("state"),
                "release": release,
            }
            row.update({f"latest_{k}": v for k, v in row.items() if k != "release"})
            row["latest_release"] = [release]
            out.append(row)
        return json_response(200, out)
