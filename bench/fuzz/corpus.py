"""The fuzz corpus on disk: `<corpus>/<target>/<hash>.bin`, one input per file (a DICOM file or a zip as is; a
folder, an upload stream or a request stream as frames, see harness.pack_frames), beside an optional `.txt`
saying why it was kept. Tests replay every file through the same target and oracle; `write_seed_corpus`
draws a small reproducible set from the strategies (the seed corpus the tests start from)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.fuzz.harness import Outcome, Target, fuzz, pack_frames, run_one, unpack_frames
from cmr.v1 import encoder_pb2

MAX_CORPUS_FILE = 96 * 1024  # keep the committed corpus small: bigger inputs are regenerated, not stored


def decode(target: str, data: bytes) -> Any:
    """A corpus file back into the input value its target takes."""
    if target in ("loader_file", "loader_zip"):
        return data
    frames = unpack_frames(data)
    if target == "loader_folder":
        return [(frames[i].decode("utf-8", "replace"), frames[i + 1]) for i in range(0, len(frames) - 1, 2)]
    if target == "loader_upload":
        return [encoder_pb2.EncodeStudyRequest.FromString(f) for f in frames]
    return frames  # an RPC: the request frames as sent


def corpus_files(corpus: Path, target: str) -> list[Path]:
    folder = corpus / target
    return sorted(folder.glob("*.bin")) if folder.is_dir() else []


def replay(target: Target, corpus: Path) -> Iterator[tuple[Path, Outcome]]:
    """Every corpus input of `target` through its oracle."""
    for path in corpus_files(corpus, target.name):
        outcome, _ = run_one(target, decode(target.name, path.read_bytes()))
        yield path, outcome


def write_seed_corpus(target: Target, corpus: Path, n: int, seed: int = 1,
                      keep: Callable[[bytes], bool] = lambda data: len(data) <= MAX_CORPUS_FILE) -> list[Path]:
    """Draw `n` inputs of `target` (without running it) and store those `keep` accepts."""
    drawn: list[bytes] = []

    def collect(value: Any) -> Outcome:
        drawn.append(target.to_bytes(value))
        return Outcome("accepted")

    fuzz(Target(target.name, target.group, target.strategy, collect, target.to_bytes), n, seed_value=seed)
    folder = corpus / target.name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for data in drawn:
        if keep(data):
            path = folder / f"seed-{hashlib.sha1(data).hexdigest()[:12]}.bin"
            path.write_bytes(data)
            out.append(path)
    return out


__all__ = ["MAX_CORPUS_FILE", "corpus_files", "decode", "pack_frames", "replay", "write_seed_corpus"]


def regression_inputs() -> dict[str, dict[str, bytes]]:
    """Inputs that failed before a fix (kept beside the drawn seeds as `crash-*.bin`), by target."""
    import io
    import zipfile

    from cmr.v1 import common_pb2, generator_pb2, search_pb2

    def zipped(name: str, data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, data)
        return out.getvalue()

    def ref_stream(path: str) -> bytes:
        return pack_frames([encoder_pb2.EncodeStudyRequest(ref=common_pb2.StudyRef(path=path)).SerializeToString()])

    nul = "data/study\x00x"
    out: dict[str, dict[str, bytes]] = {
        # 16 MB of zeros in 16 KB: pydicom parsed it as millions of empty (0000,0000) elements, ~15 s of CPU
        "loader_zip": {"crash-zero-bomb": zipped("bomb.dcm", b"\x00" * (16 << 20)),
                       "crash-element-flood": zipped("flood.dcm", b"\x08\x00\x00\x00\x00\x00\x00\x00" * 30_000)},
        "loader_file": {"crash-zeros": b"\x00" * 4096,
                        "crash-zeros-after-preamble": b"\x00" * 128 + b"DICM" + b"\x00" * 4096},
        # a StudyRef path with NUL: ValueError, INTERNAL before the fix (a too-long name under an allowed root
        # is the other half of that fix: tests/unit/fuzz_strategies, the roots differ per machine)
        "loader_upload": {"crash-ref-nul": ref_stream(nul)},
        "encoder.EncodeStudy": {"crash-ref-nul": ref_stream(nul)},
        "search.SearchByStudy": {"crash-ref-nul": pack_frames([search_pb2.SearchByStudyRequest(
            study=common_pb2.StudyQuery(ref=common_pb2.StudyRef(path=nul))).SerializeToString()])},
        "generator.GenerateReport": {"crash-ref-nul": pack_frames([generator_pb2.GenerateReportRequest(
            study=common_pb2.StudyQuery(ref=common_pb2.StudyRef(path=nul)), mode=3).SerializeToString()])},
    }
    from bench.fuzz.rpc_targets import RPCS

    for rpc in RPCS:
        # bytes that are no protobuf message, and a string field holding invalid UTF-8: INTERNAL
        # "Exception deserializing request!" from grpcio before cmr.rpc.decoding
        out.setdefault(rpc.name, {}).update({"crash-undecodable": pack_frames([b"\xff\xff\xff"]),
                                             "crash-invalid-utf8": pack_frames([b"\x0a\x02\xff\xfe"])})
    return out


def build_seed_corpus(corpus: Path, realdata: Path, synth_study: Path | None, n: int = 6, seed: int = 1) -> None:
    """The committed corpus: `n` drawn inputs per target (small ones) plus the regression inputs."""
    from bench.fuzz.dicom_inputs import load_seeds
    from bench.fuzz.loader_targets import loader_targets
    from bench.fuzz.rpc_targets import RPCS, RpcContext, rpc_target
    from cmr.config import Settings
    from cmr.model.runtime import ModelIdentity, checkpoint_path

    seeds = load_seeds(realdata, [synth_study] if synth_study else [])
    identity = ModelIdentity.from_checkpoint(checkpoint_path(Settings()), device="cpu")
    spec = identity.spec
    for target in loader_targets(seeds, spec, [Path("data")]):
        write_seed_corpus(target, corpus, n, seed, keep=lambda d: len(d) <= 48 * 1024)
    # plausible requests need server state: keys and paths that the replaying test's servers do not have, so
    # they replay as NOT_FOUND / PERMISSION_DENIED, while their shapes (vectors, tensors) are the model's
    ctx = RpcContext(("0" * 32,), ("data/studies/study_00000",), (Path("data"),), identity.embed_dim,
                     identity.version, identity.spec_id, (spec.length, spec.image_size, spec.image_size),
                     "corpus-secret", seeds)
    for rpc in RPCS:
        write_seed_corpus(rpc_target(rpc, None, ctx), corpus, n, seed)  # type: ignore[arg-type]
    for target, inputs in regression_inputs().items():
        (corpus / target).mkdir(parents=True, exist_ok=True)
        for name, data in inputs.items():
            (corpus / target / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":  # python -m bench.fuzz.corpus CORPUS REALDATA [SYNTH_STUDY]
    import sys
    import warnings

    warnings.simplefilter("ignore")
    build_seed_corpus(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
