"""Objects deleted behind mlbackup's back (a person tidying the Drive folder, a lifecycle rule,
a sync tool): doctor names every version that no longer restores whole, on every backend."""

import pytest
from conftest import empty_store

from mlbackup import backup, open_target
from mlbackup.doctor import run_doctor
from mlbackup.layout import object_key


@pytest.mark.parametrize("kind", ["file", "drive", "gdrive", "s3", "gs"])
def test_doctor_names_each_version_a_deleted_object_costs(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"lr": 0.1}')
    (ckpt / "weights.bin").write_bytes(b"first weights")
    backup(ckpt, target=target, name="ckpt")
    (ckpt / "weights.bin").write_bytes(b"second weights")
    backup(ckpt, target=target, name="ckpt")
    assert run_doctor(url, options).damaged == {}

    def stored(version, path):
        return next(e.hash for e in target.manifest("ckpt", version).files if e.path == path)

    target.backend.delete(object_key(stored(1, "weights.bin")))  # only version 1 lists it
    report = run_doctor(url, options, write_test=False)
    assert report.damaged == {"ckpt": [1]} and not report.ok
    target.backend.delete(object_key(stored(2, "config.json")))  # both versions list it
    report = run_doctor(url, options, write_test=False)
    assert report.damaged == {"ckpt": [1, 2]}
    messages = [f.message for f in report.findings if f.check == "missing"]
    assert len(messages) == 2
    assert "version 1" in messages[0] and "2 of its 2 files" in messages[0]
    assert "version 2" in messages[1] and "(config.json)" in messages[1]
