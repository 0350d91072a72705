"""Send what a run could not send to its tracking server (its unsent_tracking.jsonl) into the run.

    python scripts/replay_tracking.py outputs/<experiment>/<date>/<time>/unsent_tracking.jsonl
    python scripts/replay_tracking.py FILE --tracking-uri http://127.0.0.1:5000

The file names its run and store; values the run already holds are not sent twice, and the file is
renamed to FILE.replayed when everything went through (``mgelab.tracking.replay``).
"""

from __future__ import annotations

import sys

from mgelab.tracking.replay import main

if __name__ == "__main__":
    sys.exit(main())
