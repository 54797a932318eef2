"""Data toolkit: formats, validation, statistics, deduplication, PII redaction, split.

Pure Python: torch is imported only when a tokenizer is loaded for token counts.
"""

from strop.data.clean import CleanReport, clean_file
from strop.data.dedupe import Duplicate, DuplicateFinder, find_duplicates
from strop.data.formats import FORMATS, detect_format
from strop.data.records import DataFileError, Record, read_records, write_records
from strop.data.report import Problem, ValidationReport
from strop.data.split import SplitReport, split_file
from strop.data.stats import compute_stats
from strop.data.validate import analyse_file, validate_file

__all__ = [
    "FORMATS", "CleanReport", "DataFileError", "Duplicate", "DuplicateFinder", "Problem",
    "Record", "SplitReport", "ValidationReport", "analyse_file", "clean_file", "compute_stats",
    "detect_format", "find_duplicates", "read_records", "split_file", "validate_file",
    "write_records",
]
