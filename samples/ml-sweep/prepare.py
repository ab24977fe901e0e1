"""Load scikit-learn's bundled digits, split train / validation / test, save the arrays."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import publish
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="directory for the arrays")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=args.seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.2, random_state=args.seed, stratify=y_rest
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits.npz"
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
    print(f"saved {path}: train {len(y_train)}, validation {len(y_val)}, test {len(y_test)}")
    publish({"data_path": str(path), "train": len(y_train), "validation": len(y_val), "test": len(y_test)})


if __name__ == "__main__":
    main()
