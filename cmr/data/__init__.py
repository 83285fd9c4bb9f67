"""Training and evaluation data: study records (reports.jsonl) and cached exam tensors."""

from cmr.data.cache import ExamCache, build_cache
from cmr.data.records import StudyRecord, label_matrix, read_records

__all__ = ["ExamCache", "StudyRecord", "build_cache", "label_matrix", "read_records"]
