"""Test support shipped with mlbackup, for our tests and our users' own.

- :mod:`mlbackup.testing.memory`: the in-process ``memory://`` backend.
- :mod:`mlbackup.testing.contract`: the backend contract suite (needs pytest); a backend passes
  it with one line per backend, see that module.
- :mod:`mlbackup.testing.crash`: named crash points for kill -9 trials.
"""
