"""Regenerate pm_proto's modules from proto/*.proto (`make proto`); `--check` fails if they are stale."""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PACKAGE_DIR = Path(__file__).resolve().parent / "src" / "pm_proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into out_dir/pm_proto and return the files it wrote."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    # Mapping proto/ to the virtual folder pm_proto makes protoc write `from pm_proto import x_pb2`
    # instead of a top-level `import x_pb2` that only works with the folder on sys.path.
    args = [
        "protoc",
        f"-Ipm_proto={PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(f"pm_proto/{p.name}" for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "pm_proto").iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = sorted(p for p in PACKAGE_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
        if check:
            stale = [
                p.name
                for p in fresh
                if not (PACKAGE_DIR / p.name).exists() or not filecmp.cmp(p, PACKAGE_DIR / p.name, shallow=False)
            ]
            stale += [p.name for p in committed if p.name not in {f.name for f in fresh}]
            if stale:
                print(f"stale generated modules: {', '.join(stale)}; run `make proto`", file=sys.stderr)
                return 1
            return 0
        for old in committed:
            old.unlink()
        for new in fresh:
            (PACKAGE_DIR / new.name).write_bytes(new.read_bytes())
            print(f"wrote {(PACKAGE_DIR / new.name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
