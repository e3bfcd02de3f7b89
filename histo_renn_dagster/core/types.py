"""Typed aliases shared across ``core``."""

from __future__ import annotations

from typing import TypeAlias

FileId: TypeAlias = str
"""A GDC file UUID (lower-case, hyphenated)."""

CaseId: TypeAlias = str
"""A GDC case UUID."""

Barcode: TypeAlias = str
"""A TCGA submitter id such as ``TCGA-BH-A0EA-01Z-00-DX1``."""

JSON: TypeAlias = "dict[str, object]"
