"""Data: one reader for every verb (CSV, TSV, JSON Lines, CoNLL, Parquet) and the in-memory forms (DataFrame,
datasets.Dataset, lists), records validated with the file, line and field of each error, fingerprints and splits.

``verticals.data`` is the API packs use; ``readers`` parses files, ``records`` turns any input into raw records."""

from .readers import (
    DEFAULT_MAX_RECORD_BYTES,
    EXTENSION_FORMATS,
    FORMATS,
    RawRecord,
    check_values,
    detect_format,
    iter_lines,
    iter_raw,
    open_data_file,
    parse_json_line,
    read_raw,
    require_regular_file,
)
from .records import (
    ACCEPTED,
    check_hold_out,
    data_fingerprint,
    fingerprint,
    is_in_memory,
    is_path,
    plain,
    read_text,
    records_from,
    source_name,
    split_indices,
)

__all__ = [
    "ACCEPTED", "DEFAULT_MAX_RECORD_BYTES", "EXTENSION_FORMATS", "FORMATS", "RawRecord", "check_hold_out",
    "check_values", "data_fingerprint", "detect_format", "fingerprint", "is_in_memory", "is_path", "iter_lines",
    "iter_raw", "open_data_file", "parse_json_line", "plain", "read_raw", "read_text", "records_from",
    "require_regular_file", "source_name", "split_indices",
]
