import pytest

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


class DriveMountFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, drive_mount):
        return lambda: open_target("drive://runs/exp 1")


class TestDriveMount(BackendContractTests, DriveMountFixtures):
    pass
