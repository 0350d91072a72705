"""Copy runs from one MLflow tracking store to another, e.g. the local SQLite store onto the team server.

    python scripts/copy_runs.py --from sqlite:///outputs/mlflow.db --to http://127.0.0.1:5000
    python scripts/copy_runs.py --from sqlite:///outputs/mlflow.db --to http://127.0.0.1:5000 \
        --experiment fashion_mnist --experiment ch5_cifar10 --dry-run

Prints one line per run (copied, topped up, skipped) and a summary; running it again copies only
what is new (``mgelab.tracking.copy_runs``).
"""

from __future__ import annotations

import sys

from mgelab.tracking.copy_runs import main

if __name__ == "__main__":
    sys.exit(main())
