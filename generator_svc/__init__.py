"""Generator service: report drafting by retrieval and by CMR-TARGET (issue 6)."""
