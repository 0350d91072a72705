"""The team tracking server (``make server``): MLflow's tracking server over a PostgreSQL cluster of
this project, both on loopback, started and stopped through their own programs (subprocesses only;
nothing here imports mlflow). ``manager`` starts, stops and reports; ``scripts/server.py`` is its CLI."""
