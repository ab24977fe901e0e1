"""Pick the candidate with the best validation accuracy and measure it on the test split."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from common import publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument(
        "--candidate", nargs=3, action="append", required=True, metavar=("NAME", "MODEL_PATH", "VAL_ACCURACY")
    )
    args = parser.parse_args()

    candidates = {name: (path, float(score)) for name, path, score in args.candidate}
    for name, (path, score) in sorted(candidates.items(), key=lambda kv: -kv[1][1]):
        print(f"{name:>10}: validation accuracy {score:.4f} ({path})")
    best = max(candidates, key=lambda name: candidates[name][1])
    data = np.load(args.data)
    model = pickle.loads(Path(candidates[best][0]).read_bytes())
    test_accuracy = float(model.score(data["x_test"], data["y_test"]))
    print(f"best: {best}, test accuracy {test_accuracy:.4f}")
    publish(
        {
            "best_model": best,
            "best_model_path": candidates[best][0],
            "best_score": candidates[best][1],
            "test_accuracy": test_accuracy,
            "candidates": {name: score for name, (_, score) in candidates.items()},
        }
    )


if __name__ == "__main__":
    main()
