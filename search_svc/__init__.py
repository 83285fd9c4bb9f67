"""Search service: Qdrant collections of exams and reports; text->scan, scan->scan, zero/few-shot, cohorts (issue 5)."""
