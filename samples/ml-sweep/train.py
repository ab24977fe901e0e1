"""Train one model variant on the training split, score it on the validation split, save it."""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
from common import publish
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

MODELS = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    "forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
    "svm": lambda: make_pipeline(StandardScaler(), SVC(C=5.0, gamma="scale")),
    "boosting": lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--data", required=True, help="the .npz written by prepare")
    parser.add_argument("--out", required=True, help="directory for the model")
    args = parser.parse_args()

    data = np.load(args.data)
    model = MODELS[args.model]()
    start = time.perf_counter()
    model.fit(data["x_train"], data["y_train"])
    took = time.perf_counter() - start
    val_accuracy = float(model.score(data["x_val"], data["y_val"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.model}.pkl"
    path.write_bytes(pickle.dumps(model))
    print(f"{args.model}: validation accuracy {val_accuracy:.4f} (trained in {took:.2f}s), saved {path}")
    publish({"model": args.model, "model_path": str(path), "val_accuracy": val_accuracy, "fit_s": round(took, 3)})


if __name__ == "__main__":
    main()
