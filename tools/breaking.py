"""Fail when proto/ breaks wire or JSON compatibility with the base revision.

    python tools/breaking.py [--against REF]

Runs `buf breaking` (rules FILE + WIRE_JSON from buf.yaml) on the workspace
against a git revision of this repository: by default the merge base with
`main` on a feature branch, or the last commit (HEAD) on `main` itself, so
uncommitted edits are checked too — and, without --against, also against the
v1 baseline: the first commit that added proto/ (v1 as first published), so a
clean checkout of main (CI) is checked against something other than itself.
The whole buf workspace is compared
(not an image: `buf breaking --against` an image fails on a multi-module
workspace). When the repository has no commits yet, or the base revision has
no proto/ directory, there is nothing to break: it says so and exits 0.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_BRANCH = "main"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def _buf() -> str:
    local = Path(sys.executable).parent / "buf"
    if local.exists():
        return str(local)
    found = shutil.which("buf")
    if found is None:
        raise SystemExit("breaking: buf not found next to the interpreter or on PATH")
    return found


def base_revision(repo: Path) -> str | None:
    """The commit to compare against, or None when the repo has no commits."""
    head = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head.returncode != 0:
        return None
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    has_main = _git(repo, "rev-parse", "--verify", "--quiet", f"{MAIN_BRANCH}^{{commit}}")
    if branch != MAIN_BRANCH and has_main.returncode == 0:
        merge_base = _git(repo, "merge-base", "HEAD", MAIN_BRANCH)
        if merge_base.returncode == 0 and merge_base.stdout.strip():
            return merge_base.stdout.strip()
    return head.stdout.strip()


def baseline_revision(repo: Path) -> str | None:
    """The first commit that touched proto/: v1 as first published, or None."""
    first = _git(repo, "rev-list", "--reverse", "HEAD", "--", "proto")
    lines = first.stdout.split()
    return lines[0] if first.returncode == 0 and lines else None


def has_proto(repo: Path, revision: str) -> bool:
    listing = _git(repo, "ls-tree", "-d", "--name-only", revision, "proto")
    return listing.returncode == 0 and listing.stdout.strip() == "proto"


def run_breaking(repo: Path, revision: str) -> subprocess.CompletedProcess[str]:
    """`buf breaking` of the working tree of `repo` against `revision`."""
    git_dir = _git(repo, "rev-parse", "--absolute-git-dir").stdout.strip()
    return subprocess.run(
        [_buf(), "breaking", "--against", f"{git_dir}#ref={revision}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git revision to compare with (default: see above)")
    parser.add_argument("--repo", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repo: Path = args.repo
    revisions = [args.against] if args.against else [base_revision(repo), baseline_revision(repo)]
    checked: set[str] = set()
    for revision in revisions:
        if revision is None:
            continue
        status = check_against(repo, revision, checked)
        if status != 0:
            return status
    if not checked:
        print("breaking: no commit with proto/ yet; nothing to compare against")
    return 0


def check_against(repo: Path, revision: str, checked: set[str]) -> int:
    resolved = _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if resolved.returncode != 0:
        print(f"breaking: unknown revision {revision!r}", file=sys.stderr)
        return 2
    sha = resolved.stdout.strip()
    if sha in checked or not has_proto(repo, sha):
        return 0
    checked.add(sha)
    result = run_breaking(repo, sha)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        print(
            f"breaking: proto/ breaks compatibility with {revision} ({sha[:12]})", file=sys.stderr
        )
        return 1
    print(f"breaking: compatible with {revision} ({sha[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
