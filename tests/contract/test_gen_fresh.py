"""gen/ is exactly what tools/gen.py produces from proto/ today."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tools import gen

ROOT = Path(__file__).resolve().parents[2]


def test_gen_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generation_is_stable_and_staleness_is_reported(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    gen.generate(fresh)
    # A second generation (the committed gen/) is byte-identical.
    assert gen.stale_files(fresh, gen.GEN_DIR) == []
    # Runtime packages provide google.*; generating it would shadow them.
    assert not (fresh / "google").exists()
    assert (fresh / "fintech" / "identity" / "v1" / "identity_pb2_grpc.pyi").is_file()

    tampered = tmp_path / "tampered"
    shutil.copytree(fresh, tampered)
    (tampered / "openapi.yaml").write_text("openapi: 3.0.3\n", encoding="utf-8")
    (tampered / "fintech" / "type" / "v1" / "money_pb2.py").unlink()
    (tampered / "fintech" / "leftover_pb2.py").write_text("", encoding="utf-8")
    (tampered / "fintech" / "__pycache__").mkdir()
    (tampered / "fintech" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert gen.stale_files(fresh, tampered) == [
        "fintech/leftover_pb2.py (not generated any more)",
        "fintech/type/v1/money_pb2.py (missing)",
        "openapi.yaml (differs)",
    ]
