"""The speed table of issue 26 from ``speed_results.jsonl`` (``fashion_mnist_speed.yaml``):
seconds and images processed of each method, and retraining's multiple of each.

Run: ``python benchmarks/speed_table.py [RESULTS.jsonl]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from amnesiac.bench import read_rows

HERE = Path(__file__).parent


def main(path: Path = HERE / "speed_results.jsonl") -> None:
    latest = {(r.label, r.k): r for r in read_rows(path) if r.ok and r.kind == "unlearn"}
    print("| method | k | seconds | images trained | retrain / it (s) | retrain / it (images) |")
    print("|---|---|---|---|---|---|")
    for (label, k), r in sorted(latest.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = latest.get(("retrain", k))
        secs, imgs = r.wall, (r.images or {}).get("trained", 0)
        ratio = (
            f"{base.wall / secs:.1f}x | {(base.images or {}).get('trained', 0) / imgs:.1f}x"
            if base and label != "retrain"
            else "- | -"
        )
        print(f"| {label} | {k} | {secs:.1f} | {imgs:,} | {ratio} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "speed_results.jsonl")
