import uuid

import pytest

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


class MemoryFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self):
        url = f"memory://contract-{uuid.uuid4().hex}/run"
        return lambda: open_target(url)


class TestMemory(BackendContractTests, MemoryFixtures):
    pass
