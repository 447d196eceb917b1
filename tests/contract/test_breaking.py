"""The breaking-change check fails on wire/JSON breaks and passes otherwise."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import breaking

ROOT = Path(__file__).resolve().parents[2]
MONEY = Path("proto/fintech/type/v1/money.proto")
IDENTITY = Path("proto/fintech/identity/v1/identity.proto")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def _rev(repo: Path, ref: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", ref], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose first commit on main holds today's contracts."""
    for name in ("buf.yaml", "proto", "third_party"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy2(src, tmp_path / name)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "contracts")
    return tmp_path


def _edit(repo: Path, rel: Path, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unchanged_contracts_pass(repo: Path) -> None:
    assert breaking.main(["--repo", str(repo)]) == 0


def test_renumbered_field_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(repo, MONEY, "int64 minor_units = 2;", "int64 minor_units = 3;")
    assert breaking.main(["--repo", str(repo)]) == 1
    assert "minor_units" in capsys.readouterr().out


def test_deleted_field_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / IDENTITY
    text = path.read_text(encoding="utf-8")
    text, count = re.subn(r"\n  string etag = 13 \[[^\]]*\];", "", text)
    assert count == 1
    path.write_text(text, encoding="utf-8")
    assert breaking.main(["--repo", str(repo)]) == 1
    assert "13" in capsys.readouterr().out


def test_renamed_json_field_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Same number and type, so the wire format still matches; the JSON name
    # (what the mobile app sees through Envoy) changes.
    _edit(repo, MONEY, "string currency_code = 1;", "string currency = 1;")
    assert breaking.main(["--repo", str(repo)]) == 1
    assert "json_name" in capsys.readouterr().out


def test_added_field_passes(repo: Path) -> None:
    _edit(
        repo,
        MONEY,
        "int64 minor_units = 2;",
        "int64 minor_units = 2;\n  // Added compatibly.\n  string note = 3;",
    )
    assert breaking.main(["--repo", str(repo)]) == 0


def test_feature_branch_compares_with_merge_base(repo: Path) -> None:
    # The break is committed on the branch, so only a comparison with main's
    # merge base (not with HEAD) can see it.
    main_sha = _rev(repo, "main")
    _git(repo, "checkout", "-q", "-b", "feature")
    _edit(repo, MONEY, "int64 minor_units = 2;", "int32 minor_units = 2;")
    _git(repo, "commit", "-q", "-am", "break")
    assert _rev(repo, "HEAD") != main_sha
    assert breaking.base_revision(repo) == main_sha
    assert breaking.main(["--repo", str(repo)]) == 1


def test_repository_without_commits_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    assert breaking.base_revision(tmp_path) is None
    assert breaking.main(["--repo", str(tmp_path)]) == 0
    assert "nothing to compare against" in capsys.readouterr().out


def test_base_without_proto_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("x\n", encoding="utf-8")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "readme")
    assert breaking.main(["--repo", str(tmp_path)]) == 0
    assert "nothing to compare against" in capsys.readouterr().out


def test_a_committed_break_on_main_fails_against_the_v1_baseline(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CI checks a clean clone of main: HEAD equals the tree, so only the
    # comparison with the first published v1 can catch a break already committed.
    _edit(repo, MONEY, "int64 minor_units = 2;", "int64 minor_units = 3;")
    _git(repo, "commit", "-q", "-am", "break v1")
    assert breaking.main(["--repo", str(repo)]) == 1
    assert "minor_units" in capsys.readouterr().out
