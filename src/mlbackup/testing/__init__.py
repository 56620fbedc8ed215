"""Test support shipped with mlbackup, for our tests and our users' own.

- :mod:`mlbackup.testing.memory`: the in-process ``memory://`` backend.
- :mod:`mlbackup.testing.contract`: the backend contract suite (needs pytest); a backend passes
  it with one line per backend, see that module.
- :mod:`mlbackup.testing.s3_server`, :mod:`mlbackup.testing.gcs_server`: real-protocol test
  servers on loopback; :mod:`mlbackup.testing.fixtures`: pytest fixtures starting them.
"""
