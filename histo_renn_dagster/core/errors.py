"""Named exceptions. Every message says which item failed, what was expected and what was found."""

from __future__ import annotations


class HistoRennError(Exception):
    """Base class of every error this package raises on purpose."""


# --- GDC -----------------------------------------------------------------------------------------


class GDCError(HistoRennError):
    """Anything that went wrong talking to the GDC API (real or emulated)."""


class GDCHTTPError(GDCError):
    """The GDC answered with a non-2xx status (after the retry budget, if it was retryable)."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class GDCResponseError(GDCError):
    """A 2xx answer whose body is not what the GDC documents (not JSON, missing envelope, ...)."""


class DownloadError(GDCError):
    """A file could not be downloaded completely; nothing final was written."""

    def __init__(self, message: str, *, file_id: str | None = None) -> None:
        super().__init__(message)
        self.file_id = file_id


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the advertised size or md5."""


class ManifestError(HistoRennError):
    """A GDC manifest file is malformed."""


class BarcodeError(HistoRennError, ValueError):
    """A string is not a TCGA barcode of the expected kind."""


class STARCountsError(HistoRennError):
    """A STAR-Counts gene expression file is malformed."""


class MissingGeneError(STARCountsError, KeyError):
    """A requested gene is absent from a STAR-Counts file."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnsafePathError(HistoRennError, ValueError):
    """A name coming from remote data would write outside its destination directory."""


class GDCRecordError(GDCResponseError, ValueError):
    """A /files hit cannot become a SlideFile/ExpressionFile: a required field is missing, or its
    barcodes contradict its case/sample fields. The message names the file id."""


class MatchingError(HistoRennError, ValueError):
    """Slide and expression records cannot be matched (e.g. one file id given twice)."""


class GDCFilterError(GDCError, ValueError):
    """A GDC filter or search specification is malformed (empty field name, empty value list, ...)."""


# --- GDC emulator --------------------------------------------------------------------------------


class EmulatorError(HistoRennError):
    """The local GDC emulator was given an unusable catalogue, cohort name or setting."""


class FaultSpecError(EmulatorError, ValueError):
    """A fault-injection spec string does not follow the grammar in ``emulator/faults.py``."""


class GDCQueryError(EmulatorError, ValueError):
    """A search request (filters, fields, sort, size/from, format, body) is malformed.

    The emulator answers it with HTTP 400 and ``{"message": str(error)}``.
    """


# --- Whole-slide images --------------------------------------------------------------------------


class SlideError(HistoRennError):
    """Anything wrong with a whole-slide image file or its tiling."""


class SlideOpenError(SlideError):
    """A file could not be opened as a slide (truncated, not a slide format, unreadable)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingResolutionError(SlideError):
    """A slide carries no microns-per-pixel information and no override was given."""


class ResolutionError(SlideError, ValueError):
    """A slide's resolution is implausible or too coarse for the requested tiling."""


class TileStoreError(SlideError):
    """An HDF5 tile store is missing, malformed or has inconsistent shapes."""


class CatalogueDataError(EmulatorError, ValueError):
    """The emulator's packaged cohort tables are inconsistent, or a cohort/subset is unknown."""


# --- Synthetic slides (emulator) -----------------------------------------------------------------


class SlideSpecError(HistoRennError, ValueError):
    """A synthetic slide specification is invalid (size, resolution, stain or density)."""


# --- Cohort tables -------------------------------------------------------------------------------


class CohortError(HistoRennError, ValueError):
    """A cohort or expression table cannot be built: a problem that concerns the whole table
    (no usable row, embeddings of different dimensions or backbones, a malformed input table),
    as opposed to one bad item, which is excluded with its reason instead."""


class EmbeddingFileError(CohortError):
    """A per-slide embedding HDF5 file is unreadable or lacks a well-formed ``mean`` vector."""


# --- Random-effects neural network (core/renn) ---------------------------------------------------


class RennError(HistoRennError):
    """Anything wrong in fitting or evaluating a random-effects model."""


class RennSpecError(RennError, ValueError):
    """A RENN training/evaluation setting is invalid (unknown loss or profile, m < 1, ...)."""


class RennDataError(RennError, ValueError):
    """A table given to the RENN code is unusable: missing column, non-finite or non-positive
    values under a log transform, unknown split label, too few rows or sites."""


# --- Features (frozen-CNN embeddings) ------------------------------------------------------------


class FeatureError(HistoRennError):
    """Anything that went wrong computing or storing slide embeddings."""


class BackboneError(FeatureError, ValueError):
    """A backbone name is unknown, or its optional package (e.g. timm) is not installed."""


class WeightsError(FeatureError):
    """Backbone weights are missing, fail their sha256 check, or do not fit the architecture."""


class ComputeError(FeatureError, ValueError):
    """A compute setting (device, precision, batch size, workers) is invalid or unavailable here."""


class EmbeddingStoreError(FeatureError):
    """An HDF5 embedding file is missing, malformed or inconsistent with its tile store."""


# --- Local storage -------------------------------------------------------------------------------


class InsufficientSpaceError(HistoRennError, OSError):
    """Not enough free disk space for a file about to be written; the message names the item, the
    folder, the bytes needed and the bytes free."""


# --- Results and reports (core/reporting) --------------------------------------------------------


class ReportError(HistoRennError):
    """The result tables or the report cannot be built."""


class ResultsError(ReportError, ValueError):
    """A model output file (history/models/predictions Parquet, config.json) is unreadable or does
    not follow the file contract: the message names the file, the column or value, and what was
    expected."""
