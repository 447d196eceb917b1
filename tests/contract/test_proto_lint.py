"""`buf lint` passes on the contracts, and really checks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = str(Path(sys.executable).parent / "buf")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUF, "lint"], cwd=cwd, capture_output=True, text=True, check=False)


def test_buf_lint_passes() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_rejects_a_violation_in_our_module(tmp_path: Path) -> None:
    # Guards the configuration: if buf.yaml ignored proto/ by mistake, the
    # test above would pass on anything.
    for name in ("buf.yaml", "proto", "third_party"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy2(src, tmp_path / name)
    bad = tmp_path / "proto" / "fintech" / "type" / "v1" / "bad.proto"
    bad.write_text(
        'syntax = "proto3";\n\npackage fintech.type.v1;\n\n'
        "// Zero value without the _UNSPECIFIED suffix.\nenum Colour {\n"
        "  // Red.\n  COLOUR_RED = 0;\n}\n",
        encoding="utf-8",
    )
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "COLOUR_RED" in result.stdout + result.stderr
