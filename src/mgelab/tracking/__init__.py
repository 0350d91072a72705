"""Run tracking behind a small interface (``base.RunLogger``); the only package that imports mlflow.

``client`` (retried MLflow calls), ``store`` (creating and querying the store), ``mlflow_logger``
(the run logger), ``model_logging`` (pyfunc models and the registry), ``artifacts`` (a run's files
downloaded), ``reachability`` (a tracking server checked before a run starts), ``outbox`` and
``spool`` (what a server that went away could not take, held, retried and written to the run
directory), ``replay`` (that file sent into its run later), ``objective`` (the value a run hands
its sweeper), ``sweep`` and ``sweep_job`` (a sweep's parent and child runs), ``run_context`` (MLflow's
standard tags: user, source script, git), ``run_names`` (a run's name unique in its experiment),
``datasets`` (data splits as MLflow dataset inputs), ``system_metrics`` (MLflow's CPU/memory monitor),
``pyfunc_model`` (the models-from-code file a logged model loads), ``copy_runs`` and ``run_copy``
(runs moved from one store to another, re-runnable). MLflow-free: ``base``, ``records``, ``retry``,
``metric_buffer``, ``params``, ``provenance``, and ``server`` (the team server's PostgreSQL cluster and
``mlflow server`` processes, started and stopped as subprocesses). The layer's rule: no Hydra,
no trainer, no MegEngine and no serving or deploy code.
"""
