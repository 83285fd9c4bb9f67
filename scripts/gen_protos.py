"""Regenerate the Python code of the gRPC/protobuf contracts: protos/cmr/v1/*.proto -> cmr/v1/*_pb2*.py(i).

    make protos            # or: .venv/bin/python scripts/gen_protos.py [--out DIR]

The output depends only on the .proto files and the pinned grpcio-tools, so it is committed, and
tests/unit/test_protos_fresh.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "cmr/v1"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules under out_dir/cmr/v1/ and return their paths."""
    well_known = str(files("grpc_tools") / "_proto")  # google/protobuf/*.proto
    (out_dir / PACKAGE).mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *(p.relative_to(PROTO_ROOT).as_posix() for p in proto_files())]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed (see the messages above)")
    return sorted(p for p in (out_dir / PACKAGE).iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = ap.parse_args()
    for p in generate(args.out):
        print(p.relative_to(args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
