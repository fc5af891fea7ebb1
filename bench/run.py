"""callsync benchmarks: ``make bench`` runs this.

    bench/run.py                       every benchmark in bench/ (receiver, sync, gui: those present)
    bench/run.py receiver              one benchmark
    bench/run.py receiver sync         several, in that order
    bench/run.py receiver --duration 5 options after the names go to each selected benchmark
    bench/run.py --list                what is available

A benchmark NAME lives in ``bench/NAME_bench.py`` and has ``main(argv) -> int``.
The exit code is the first non-zero one of the benchmarks run (0 when all passed).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ORDER = ("receiver", "sync", "gui")  # the usual order; any other *_bench.py runs after these


def available() -> list[str]:
    found = {p.name[: -len("_bench.py")] for p in BENCH_DIR.glob("*_bench.py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for path in (str(ROOT), str(BENCH_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    names: list[str] = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    if argv and argv[0] == "--":
        argv.pop(0)
    known = available()
    if not names and argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        print("available:", ", ".join(known) or "none")
        return 0
    if not names and argv[:1] == ["--list"]:
        print("\n".join(known))
        return 0
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"bench/run.py: no benchmark named {', '.join(unknown)} (available: {', '.join(known)})",
              file=sys.stderr)
        return 2
    exit_code = 0
    for name in names or known:
        if len(names or known) > 1:
            print(f"== {name} ==", flush=True)
        module = importlib.import_module(f"{name}_bench")
        code = module.main(list(argv))
        if code and not exit_code:
            exit_code = code
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
