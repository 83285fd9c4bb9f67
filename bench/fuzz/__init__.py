"""Fuzzing of the study loader and every gRPC handler (`cmr bench fuzz`): hypothesis strategies from protobuf
descriptors and from mutated DICOM studies, targets with their oracles, and a harness that counts outcomes and
keeps every failing input as a corpus file."""
