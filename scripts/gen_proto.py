"""Regenerate navigator/v1/*_pb2.py, *_pb2_grpc.py and *.pyi from the .proto files.

Usage: python scripts/gen_proto.py [--check]

With --check nothing is written: the generated files are compared with what is
committed and the script exits 1 naming the files that drifted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "navigator" / "v1"


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    protos = sorted(PROTO_DIR.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(p.relative_to(ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p.relative_to(out) for p in (out / "navigator" / "v1").iterdir() if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code differs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        files = generate(out)
        drifted = [f for f in files if not (ROOT / f).exists() or (ROOT / f).read_bytes() != (out / f).read_bytes()]
        if args.check:
            for f in drifted:
                print(f"generated code out of date: {f}", file=sys.stderr)
            if drifted:
                print("run: python scripts/gen_proto.py", file=sys.stderr)
            return 1 if drifted else 0
        for f in files:
            shutil.copyfile(out / f, ROOT / f)
            print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
