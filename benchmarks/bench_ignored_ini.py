"""What ignoring an ini file in the release folder costs: the gate starting a second time.

Gates two copies of ``examples/port-weather`` with ``--collect-only`` (no deploy: the difference
is the start-up), from the release folder, one with a harmless ``pytest.ini`` there (which the gate
ignores by running again without it), alternating, and prints each median and their difference.

    python benchmarks/bench_ignored_ini.py               # 5 runs each
    python benchmarks/bench_ignored_ini.py --repeats 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather"
COMMAND = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--release-stage", "devtest", "--co", "-q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name in ("plain", "with-ini"):
            folders[name] = Path(tmp, name)
            shutil.copytree(EXAMPLE, folders[name], ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
        (folders["with-ini"] / "pytest.ini").write_text("[pytest]\nmarkers =\n    mine: a team marker\n")
        times: dict[str, list[float]] = {name: [] for name in folders}
        for _ in range(repeats):
            for name, folder in folders.items():
                started = time.monotonic()
                done = subprocess.run(COMMAND, cwd=folder, capture_output=True, text=True, timeout=600)
                times[name].append(time.monotonic() - started)
                ignored = "releasetest: ignoring" in done.stdout + done.stderr
                assert ignored == (name == "with-ini"), done.stdout[-2000:] + done.stderr[-2000:]
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"second start: {statistics.median(times['with-ini']) - statistics.median(times['plain']):.2f} s")


if __name__ == "__main__":
    main()
