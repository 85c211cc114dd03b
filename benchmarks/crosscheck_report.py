"""Summarise a crosscheck report (``TILEVM_CROSSCHECK=report.jsonl pytest ...`` on a GPU machine, see
``tests/gpu_crosscheck.py``): launches by outcome, then each test whose GPU run differed or failed.

    python benchmarks/crosscheck_report.py report.jsonl
"""

from __future__ import annotations

import collections
import json
import sys


def main(path: str) -> None:
    with open(path) as report:
        records = [json.loads(line) for line in report if line.strip()]
    outcomes = collections.Counter(record["outcome"] for record in records)
    tests = {record["test"] for record in records}
    print(f"{len(records)} launches from {len(tests)} tests")
    print("| outcome | launches |")
    print("| --- | ---: |")
    for outcome in ("same", "close", "differ", "error"):
        print(f"| {outcome} | {outcomes.get(outcome, 0)} |")
    problems = collections.defaultdict(list)
    for record in records:
        if record["outcome"] in ("differ", "error"):
            problems[(record["outcome"], record["kernel"], record.get("error", ""))].append(record["test"])
    for (outcome, kernel, error), failing in sorted(problems.items()):
        print(f"- {outcome}: kernel {kernel} in {len(failing)} launches, e.g. {failing[0]} {error}")


if __name__ == "__main__":
    main(sys.argv[1])
