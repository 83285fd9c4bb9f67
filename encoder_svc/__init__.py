"""Encoder service: the CMR-CLIP image encoder on NVIDIA Triton and the text encoder behind gRPC (issue 4)."""
