"""EncoderService: CMR-CLIP image and text encoders served on NVIDIA Triton Inference Server behind gRPC.

- `triton_models`: the Triton side (model configs as data, dynamic batching, warm-up, start/stop), running
  the model in process (`cmr.model.runtime`: loading, device, version);
- `triton_client`: calls into Triton, with its failures turned into service errors;
- `service`: the gRPC servicer; `server`: `cmr serve encoder`; `client`: the typed client.
Shared with the other services, so in the core: the upload stream and study references (`cmr.rpc.uploads`),
study decoding and measuring in worker processes (`cmr.rpc.study_loading`, `cmr.rpc.measuring`).
"""
