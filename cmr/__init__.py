"""Core library of the CMR semantic search platform: DICOM study loading, the synthetic CMR benchmark, the
CMR-CLIP model, training and evaluation, quantification, and what every service shares (cmr.rpc, cmr.security,
the generated contracts cmr.v1). Services, the UI and the orchestration import from here; nothing here imports
them (the layering: docs/architecture.md)."""

__version__ = "0.1.0"
