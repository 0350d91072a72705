#!/usr/bin/env bash
# Prints the path of a CPython that MegEngine 1.13 has wheels for (3.10, 3.9 or 3.8),
# preferring the newest: $PYTHON if set, then pythonX.Y on PATH, then pyenv's installs.
set -u
supported='import sys; sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 10) else 1)'

works() { "$1" -c "$supported" >/dev/null 2>&1; }

if [ -n "${PYTHON:-}" ]; then
  works "$PYTHON" && { command -v "$PYTHON"; exit 0; }
  echo "PYTHON=$PYTHON is not a CPython 3.8-3.10" >&2
  exit 1
fi
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for minor in 10 9 8; do
  # A pyenv shim answers on PATH but refuses unless its version is selected: `works` catches that.
  if command -v "python3.$minor" >/dev/null && works "python3.$minor"; then
    command -v "python3.$minor"; exit 0
  fi
  for candidate in $(ls -d "$pyenv_root"/versions/3."$minor".* 2>/dev/null | sort -rV); do
    if works "$candidate/bin/python"; then echo "$candidate/bin/python"; exit 0; fi
  done
done
cat >&2 <<'MSG'
No CPython 3.8, 3.9 or 3.10 found. MegEngine 1.13 publishes wheels for these only.
Get one, for example:
  pyenv install 3.10.13          (https://github.com/pyenv/pyenv)
  apt-get install python3.10-venv (on distributions that package it)
then run make again, or point at it: make setup PYTHON=/path/to/python3.10
MSG
exit 1
