"""EncoderService: CMR-CLIP image and text encoders served on NVIDIA Triton Inference Server behind gRPC.

- `runtime`: the model in process (loading, device, version) - what Triton's model callables run;
- `triton_models`: the Triton side (model configs as data, dynamic batching, warm-up, start/stop);
- `triton_client`: calls into Triton, with its failures turned into service errors;
- `uploads`: a study streamed as chunks or named by reference -> bytes/path the loader reads;
- `study_loading`: study decoding in worker processes (the GIL and crashes stay out of the server);
- `service`: the gRPC servicer; `server`: `cmr serve encoder`; `client`: the typed client.
"""
