"""Write a Markdown report of the sweep."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--summary", required=True, help="evaluate's outputs, as JSON")
    parser.add_argument("--run", required=True)
    args = parser.parse_args()

    summary = json.loads(args.summary)
    rows = sorted(summary["candidates"].items(), key=lambda kv: -kv[1])
    lines = [
        f"# {args.title}",
        "",
        f"Run `{args.run}`. Best model: **{summary['best_model']}**, "
        f"validation accuracy {summary['best_score']:.4f}, test accuracy {summary['test_accuracy']:.4f}.",
        "",
        "| model | validation accuracy |",
        "|---|---|",
        *(f"| {name} | {score:.4f} |" for name, score in rows),
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    # what the run is for, as the run's last outputs: `odin run` prints them when the run is DONE
    publish(
        {
            "best_model": summary["best_model"],
            "best_score": summary["best_score"],
            "test_accuracy": summary["test_accuracy"],
            "report_path": str(out),
        }
    )


if __name__ == "__main__":
    main()
