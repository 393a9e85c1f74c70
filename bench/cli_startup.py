"""CLI start-up: wall time of `genai-audit --help`, `query --help` and a `query` on a small
embedded store, each against bare `python -c pass`, interleaved over repeats.

Each figure is the median over the repeats, printed with its ratio to the bare interpreter
of the same run and with what it adds over it. Targets (issue 23): `--help` under 0.5 s and
`query` start-up (everything before the engine answers) under 1 s on the 2-core machine.

    python bench/cli_startup.py             # 7 repeats
    python bench/cli_startup.py --repeats 15
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median

CLI = [sys.executable, "-m", "genai_audit.cli.main"]


def run(cmd: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed: {done.stderr[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    try:
        store = scratch / "store"
        run([*CLI, "init", "--dsn", str(store)])
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "genai-audit --help": [*CLI, "--help"],
            "genai-audit query --help": [*CLI, "query", "--help"],
            "genai-audit query 'SELECT 1'": [*CLI, "query", "--dsn", str(store), "SELECT 1"],
            "python -c 'import chdb'": [sys.executable, "-c", "import chdb"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):  # interleaved: drift on a shared machine hits all
            for name, cmd in cases.items():
                times[name].append(run(cmd))
        base = median(times["python -c pass"])
        print(f"{'case':<32} {'median s':>9} {'x bare':>8} {'+ s':>7}   (repeats: "
              f"{args.repeats})")
        for name, values in times.items():
            m = median(values)
            print(f"{name:<32} {m:>9.3f} {m / base:>8.1f} {m - base:>7.3f}")
        print("\n'import chdb' is the embedded engine's own load, which any query on an "
              "embedded store pays; a server DSN does not.")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
