import pytest

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


class LocalFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, tmp_path):
        return lambda: open_target(tmp_path / "target")


class FileUrlFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, tmp_path):
        return lambda: open_target((tmp_path / "target with space").as_uri())


class TestLocal(BackendContractTests, LocalFixtures):
    pass


class TestLocalFileUrl(BackendContractTests, FileUrlFixtures):
    pass
