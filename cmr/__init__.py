"""Core library of the CMR semantic search platform: DICOM study loading, the synthetic CMR benchmark,
and (later) the CMR-CLIP model. Services import from here; nothing here imports a service."""

__version__ = "0.1.0"
