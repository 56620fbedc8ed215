"""Test support shipped with mlbackup, for our tests and our users' own.

- `mlbackup.testing.memory`: the in-process ``memory://`` backend.
- `mlbackup.testing.contract`: the backend contract suite (needs pytest); a backend passes
  it with one line per backend, see that module.
- `mlbackup.testing.s3_server`, `mlbackup.testing.gcs_server`,
  `mlbackup.testing.drive_server`: real-protocol test servers on loopback (moto's S3, the
  GCS emulator with an OAuth token endpoint, a fake Drive v2 API);
  `mlbackup.testing.fixtures`: pytest fixtures starting them.
- the fault kit: `mlbackup.testing.fault_proxy` (an HTTP proxy injecting canned answers,
  resets, lost responses, silence, refusals, latency and a bandwidth cap between a client
  library and any of those servers), `mlbackup.testing.faulty_fs` (errno faults, slow and
  held calls and truncated writes in the ``file`` and ``drive`` backends' filesystem) and
  `mlbackup.testing.crash` (a backup in a child process, SIGKILLed at a chosen instant).
"""
