"""A sweep as MLflow sees it: one parent run, one child run per job (no mlflow import here).

The parent is created when the multirun starts (``mgelab.config.callbacks.MlflowSweep``); every
job reports its outcome to it as a tag ``job/<num>`` (Hydra's own view: status, return value,
error), so the summary counts jobs that failed before they had a run of their own too. A job is
identified across sweeps by a key made of its overrides and the sweep's name, which is what
``sweep.skip_finished=true`` looks up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mgelab.tracking.objective import objective_of
from mgelab.tracking.records import RunRecord
from mgelab.tracking.store import TrackingStore

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's UI nests child runs under their parent by it
ROLE_TAG = "sweep/role"  # "parent" on a sweep's parent run
JOB_KEY_TAG = "sweep/job_key"
SWEEP_NAME_TAG = "sweep/name"
# Every run's (and parent's) command-line overrides, space-separated; NO_OVERRIDES when there were none.
OVERRIDES_TAG = "hydra/overrides"
NO_OVERRIDES = "(none)"
JOB_TAG_PREFIX = "job/"  # on the parent: job/<num> = the job's outcome, as JSON
SKIPPED_TAG_PREFIX = "skipped/"  # on the parent: skipped/<num> = the finished run it reused
# Overrides that change where or how verbosely a job runs, or how the sweep itself is run,
# but not what is trained: left out of the job key so a re-run with them still matches (a cluster
# sweep re-submitted with trainer.resume=auto after its time limit finds its finished jobs).
NEUTRAL_OVERRIDES = ("sweep.", "hydra.", "paths.", "logger.", "trainer.progress_bar", "trainer.prefetch_batches",
                     "trainer.resume", "data.mirror", "data.sha256", "data.verify", "data.base_url", "data.system_dirs")


def parent_name(sweep_name: Optional[str], started: datetime, swept: Sequence[str]) -> str:
    """A sweep's parent run: ``sweep.name`` when given, else its start and what it varies
    (``2026-12-01 14:05 model=linear,mlp,cnn``), so sweeps of one experiment read apart."""
    if sweep_name:
        return str(sweep_name)
    return " ".join([f"{started:%Y-%m-%d %H:%M}", *(swept or ["sweep"])])


def overrides_tag_value(overrides: Sequence[str]) -> str:
    """What OVERRIDES_TAG holds for these overrides."""
    return " ".join(overrides) or NO_OVERRIDES


def overrides_in_tags(tags: Mapping[str, str]) -> List[str]:
    """The overrides a run's OVERRIDES_TAG records ([] when none, or for a run without the tag)."""
    text = tags.get(OVERRIDES_TAG, "")
    return [] if text in ("", NO_OVERRIDES) else text.split(" ")


def override_key(override: str) -> str:
    """``+optim.lr=0.1`` -> ``optim.lr``."""
    return override.split("=", 1)[0].lstrip("+~")


def identity_overrides(overrides: Sequence[str]) -> List[str]:
    return sorted(o for o in overrides if not override_key(o).startswith(NEUTRAL_OVERRIDES))


def job_key(overrides: Sequence[str], sweep_name: Optional[str]) -> str:
    """The same job of the same (named) sweep gets the same key, whatever the overrides' order."""
    text = json.dumps([sweep_name or "", identity_overrides(overrides)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def varying_overrides(jobs: Sequence[Sequence[str]]) -> List[List[str]]:
    """Each job's overrides less those every job shares: what tells the jobs apart."""
    if len(jobs) < 2:
        return [list(j) for j in jobs]
    shared = set(jobs[0]).intersection(*jobs[1:])
    return [[o for o in job if o not in shared] for job in jobs]


@dataclass
class JobOutcome:
    """One job as Hydra saw it end: its return value, or the exception it raised."""

    num: int
    status: str  # COMPLETED | FAILED
    overrides: List[str]
    value: Optional[float] = None
    error: Optional[str] = None
    run_id: Optional[str] = None  # its child run, or for a skipped job the run it reused
    skipped: bool = False

    def to_tag(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k in ("status", "overrides", "value", "error")})

    @classmethod
    def from_tag(cls, num: int, text: str) -> JobOutcome:
        return cls(num=num, **json.loads(text))


def outcome_of(num: int, overrides: Sequence[str], status: str, value: Any, error: Optional[str]) -> JobOutcome:
    number = float(value) if isinstance(value, (int, float)) else None
    return JobOutcome(num=num, status=status, overrides=[str(o) for o in overrides], value=number, error=error)


def find_finished_job(store: TrackingStore, experiment_name: str, key: str) -> Optional[RunRecord]:
    """The newest FINISHED run of the experiment with this job key."""
    experiment_id = store.experiment_id(experiment_name)
    if experiment_id is None:
        return None
    found = store.search(
        [experiment_id],
        f"tags.`{JOB_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def child_runs(store: TrackingStore, parent_run_id: str) -> List[RunRecord]:
    """A sweep's jobs, in every experiment (a sweep over ``data=`` spans several)."""
    return store.search(store.experiment_ids(), f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'")


@dataclass
class SweepSummary:
    outcomes: List[JobOutcome]
    objective: Optional[Tuple[str, str]] = None
    best: Optional[JobOutcome] = None
    failures: List[JobOutcome] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return sum(o.status == "COMPLETED" for o in self.outcomes)

    @property
    def skipped(self) -> int:
        return sum(o.skipped for o in self.outcomes)

    def metrics(self) -> Dict[str, float]:
        metrics = {
            "sweep/jobs": float(len(self.outcomes)),
            "sweep/finished": float(self.finished),
            "sweep/failed": float(len(self.failures)),
            "sweep/skipped": float(self.skipped),
        }
        if self.best is not None and self.best.value is not None:
            metrics["sweep/best_value"] = self.best.value
        return metrics

    def tags(self) -> Dict[str, str]:
        tags = {"sweep/failed_jobs": "; ".join(f"{o.num}: {o.error}" for o in self.failures) or "(none)"}
        if self.objective is not None:
            tags["sweep/objective"] = f"{self.objective[0]} ({self.objective[1]})"
        if self.best is not None:
            tags["sweep/best_job"] = f"{self.best.num}: {' '.join(self.best.overrides)}"
            tags["sweep/best_run_id"] = self.best.run_id or ""
        return tags

    def lines(self) -> List[str]:
        """What the end of a sweep prints: the counts, the best job, every failure and why."""
        head = (
            f"Sweep summary: {len(self.outcomes)} jobs, {self.finished} finished "
            f"({self.skipped} skipped as already finished), {len(self.failures)} failed"
        )
        lines = [head]
        shown = dict(zip((o.num for o in self.outcomes), varying_overrides([o.overrides for o in self.outcomes])))
        if self.best is not None and self.objective is not None:
            best = " ".join(shown[self.best.num])
            lines.append(f"  best {self.objective[0]} = {self.best.value:.4f}: job {self.best.num} ({best})")
        for failure in self.failures:
            lines.append(f"  FAILED job {failure.num} ({' '.join(shown[failure.num])}): {failure.error}")
        return lines


def summarize(store: TrackingStore, parent_run_id: str) -> SweepSummary:
    """The outcome of every job that reported to the parent, joined with its MLflow run."""
    parent = store.get_run(parent_run_id)
    outcomes = sorted(
        (JobOutcome.from_tag(int(k[len(JOB_TAG_PREFIX) :]), v) for k, v in parent.tags.items()
         if k.startswith(JOB_TAG_PREFIX)),
        key=lambda o: o.num,
    )
    children = {run.tags.get("hydra/job_num"): run for run in child_runs(store, parent_run_id)}
    for outcome in outcomes:
        reused = parent.tags.get(f"{SKIPPED_TAG_PREFIX}{outcome.num}")
        run = children.get(str(outcome.num))
        if reused:
            outcome.skipped, outcome.run_id = True, reused
        elif run is not None:
            outcome.run_id = run.run_id
    objective = _sweep_objective(store, outcomes, children)
    summary = SweepSummary(outcomes, objective, failures=[o for o in outcomes if o.status != "COMPLETED"])
    scored = [o for o in outcomes if o.status == "COMPLETED" and o.value is not None]
    if scored and objective is not None:
        pick = max if objective[1] == "max" else min
        summary.best = pick(scored, key=lambda o: o.value)
    return summary


def _sweep_objective(
    store: TrackingStore, outcomes: Sequence[JobOutcome], children: Mapping[Optional[str], RunRecord]
) -> Optional[Tuple[str, str]]:
    """What the jobs monitored, from the first run that recorded it: a child, else a reused run.

    A job that failed before it finished recorded no objective, so several may be tried.
    """
    for run in children.values():
        objective = objective_of(run)
        if objective is not None:
            return objective
    for outcome in outcomes:
        if outcome.skipped and outcome.run_id:
            objective = objective_of(store.get_run(outcome.run_id))
            if objective is not None:
                return objective
    return None


@dataclass
class Selection:
    """Runs picked for a report, and the sweep's parent run when a sweep was asked for."""

    runs: List[RunRecord]
    parent: Optional[RunRecord] = None
    label: str = "runs"


def select_runs(
    store: TrackingStore, experiment: Optional[str] = None, sweep: Optional[str] = None, filter_string: str = ""
) -> Selection:
    """Runs of an experiment, or of one sweep (a parent run id, or ``latest``), narrowed by an
    MLflow filter (``tags.model = 'mlp'``). A re-run sweep's skipped jobs bring the runs they reused."""
    experiment_ids = store.experiment_ids()
    if experiment:
        found = store.experiment_id(experiment)
        if found is None:
            raise ValueError(f"no MLflow experiment {experiment!r} in {store.tracking_uri}")
        experiment_ids = [found]
    if not sweep:
        runs = [r for r in store.search(experiment_ids, filter_string) if r.tags.get(ROLE_TAG) != "parent"]
        return Selection(_job_order(runs), None, experiment or "all")
    parent = _find_parent(store, experiment_ids, str(sweep))
    where = f"tags.`{PARENT_RUN_TAG}` = '{parent.run_id}'" + (f" and {filter_string}" if filter_string else "")
    runs = store.search(store.experiment_ids(), where)
    reused = [v for k, v in parent.tags.items() if k.startswith(SKIPPED_TAG_PREFIX)]
    runs += [store.get_run(run_id) for run_id in reused]
    return Selection(_job_order(runs), parent, parent.name)


def _find_parent(store: TrackingStore, experiment_ids: Sequence[str], sweep: str) -> RunRecord:
    if sweep != "latest":
        return store.get_run(sweep)
    parents = store.search(
        experiment_ids, f"tags.`{ROLE_TAG}` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not parents:
        raise ValueError(f"no sweep (parent run) in {store.tracking_uri}")
    return parents[0]


def _job_order(runs: List[RunRecord]) -> List[RunRecord]:
    """A sweep's jobs by job number, other runs by start time."""
    return sorted(runs, key=lambda r: (int(r.tags.get("hydra/job_num", -1)), r.start_time or 0))
