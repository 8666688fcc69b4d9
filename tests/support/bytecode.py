"""Compile tests/ to bytecode once, before the pytest processes start (scripts/test runs
``python -m tests.support.bytecode``).

Where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it), pytest keeps no cache of the
test modules it rewrites (their ``assert`` statements made to explain themselves) and Python
none of the modules it imports: every pytest process parses, rewrites and compiles all of
tests/ again — about 3.5 s of CPU each, four processes a run. This writes, in one process,
what pytest would have written (its rewritten modules, in ``__pycache__/*.pytest-*.pyc``,
hash-checked: a changed test is rewritten again) and the plain bytecode of the helpers, as
scripts/setup does for src/. Nothing changes in what runs: pytest reads a cached module only
when its hash matches the source. Should pytest's internals move, this says so and does
nothing; the suite runs as before, only slower.
"""

from __future__ import annotations

import fnmatch
import py_compile
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
PATTERNS = ("test_*.py", "*_test.py")  # pytest's python_files, which pyproject keeps


def rewritten(path: Path) -> bool:
    """Whether pytest rewrites ``path`` when it imports it (a test module or a conftest)."""
    return path.name == "conftest.py" or any(fnmatch.fnmatch(path.name, p) for p in PATTERNS)


def main() -> int:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    if {"python_files", "enable_assertion_pass_hook"} & set(options["ini_options"]):
        print("tests.support.bytecode: pytest's rewriting is configured: not warmed")  # noqa: T201
        return 0
    try:
        from _pytest.assertion.rewrite import (
            PYC_TAIL,
            _read_pyc,
            _rewrite_test,
            _write_pyc,
            get_cache_dir,
        )
    except ImportError as err:
        print(f"tests.support.bytecode: not warmed ({err})")  # noqa: T201
        return 0
    state = SimpleNamespace(trace=lambda _message: None)  # _write_pyc uses its trace only
    for path in sorted(TESTS.rglob("*.py")):
        if not rewritten(path):
            py_compile.compile(str(path), quiet=1)
            continue
        cache = get_cache_dir(path)
        pyc = cache / (path.name[:-3] + PYC_TAIL)
        if _read_pyc(path, pyc) is not None:
            continue  # up to date
        cache.mkdir(exist_ok=True)
        source_hash, code = _rewrite_test(path, None)  # type: ignore[arg-type] # as pytest does with no pass hook
        _write_pyc(state, code, source_hash, pyc)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
