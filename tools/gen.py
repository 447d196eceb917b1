"""Regenerate gen/ from proto/ deterministically.

    python tools/gen.py           # rewrite gen/
    python tools/gen.py --check   # exit 1 and list the stale files

Output: Python messages (`_pb2.py`), grpc stubs usable with grpc.aio
(`_pb2_grpc.py`), mypy-protobuf stubs (`.pyi`), `api.binpb` (descriptor set
with imports and source info, for Envoy's transcoder and tools/openapi.py) and
`openapi.yaml`. protoc comes from grpcio-tools (`python -m grpc_tools.protoc`)
because grpcio-tools ships no `protoc-gen-grpc_python` executable that buf
could drive; buf builds the descriptor set. buf.gen.yaml documents the same
plugins for people who use `buf generate` with their own plugins.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`python tools/gen.py`): make `tools` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import openapi

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GOOGLEAPIS_DIR = ROOT / "third_party" / "googleapis"
GEN_DIR = ROOT / "gen"
BIN_DIR = Path(sys.executable).parent
# Caches that Python or tools create inside gen/ are not generated output.
IGNORED_PARTS = frozenset({"__pycache__", ".mypy_cache"})


def _bundled_protobuf_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def proto_files() -> list[str]:
    """Our .proto files relative to proto/, sorted so protoc's order is stable."""
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def _tool(name: str) -> str:
    """A binary installed next to the running interpreter (the virtualenv)."""
    path = BIN_DIR / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"gen: {name} not found next to {sys.executable} or on PATH")
    return found


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"gen: command failed ({result.returncode}): {' '.join(cmd)}")


def generate(out: Path) -> None:
    """Write the whole generated tree into `out` (which must be empty)."""
    files = proto_files()
    if not files:
        raise SystemExit("gen: no .proto files under proto/")
    out.mkdir(parents=True, exist_ok=True)
    # google/** is not generated: the googleapis-common-protos and protobuf
    # runtime packages already provide google.api, google.rpc and
    # google.protobuf, and duplicates would clash in the descriptor pool.
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={GOOGLEAPIS_DIR}",
            f"--proto_path={_bundled_protobuf_include()}",
            f"--plugin=protoc-gen-mypy={_tool('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_tool('protoc-gen-mypy_grpc')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *files,
        ],
        cwd=PROTO_DIR,
    )
    # The descriptor set covers the whole workspace (our module and the
    # vendored googleapis one), so google/api/http.proto and the
    # google/rpc error-detail types Envoy needs for convert_grpc_status are
    # always present. Source info keeps the comments for the OpenAPI text.
    binpb = out / "api.binpb"
    _run([_tool("buf"), "build", "-o", str(binpb)], cwd=ROOT)
    (out / "openapi.yaml").write_text(openapi.render(binpb.read_bytes()), encoding="utf-8")


def _files(tree: Path) -> set[str]:
    return {
        p.relative_to(tree).as_posix()
        for p in tree.rglob("*")
        if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(tree).parts)
    }


def stale_files(fresh: Path, current: Path) -> list[str]:
    """Paths (relative to gen/) that differ between `fresh` and `current`."""
    fresh_files = _files(fresh)
    current_files = _files(current) if current.exists() else set()
    stale = []
    for rel in sorted(fresh_files | current_files):
        if rel not in fresh_files:
            stale.append(f"{rel} (not generated any more)")
        elif rel not in current_files:
            stale.append(f"{rel} (missing)")
        elif not filecmp.cmp(fresh / rel, current / rel, shallow=False):
            stale.append(f"{rel} (differs)")
    return stale


def _sync(fresh: Path, target: Path) -> None:
    """Make `target` hold exactly the files of `fresh` (caches are left alone)."""
    target.mkdir(parents=True, exist_ok=True)
    fresh_files = _files(fresh)
    for rel in sorted(_files(target) - fresh_files):
        (target / rel).unlink()
    for rel in sorted(fresh_files):
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or not filecmp.cmp(fresh / rel, dest, shallow=False):
            shutil.copyfile(fresh / rel, dest)
    # Directories left empty by removed protos would linger otherwise.
    for directory in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when gen/ is stale")
    parser.add_argument("--gen-dir", type=Path, default=GEN_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fintech-gen-") as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        if args.check:
            stale = stale_files(fresh, args.gen_dir)
            if stale:
                print("gen/ is stale; run `python tools/gen.py`:", file=sys.stderr)
                for line in stale:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print("gen/ is up to date")
            return 0
        _sync(fresh, args.gen_dir)
    print(f"generated {args.gen_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
