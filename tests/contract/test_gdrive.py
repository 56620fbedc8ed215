import pytest

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


class GDriveFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, gdrive_options):
        return lambda: open_target("gdrive://root/runs/exp1", **gdrive_options)


class TestGDrive(BackendContractTests, GDriveFixtures):
    pass
