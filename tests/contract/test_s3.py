import pytest
from canary import CANARY_SECRET

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


class S3Fixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, s3_server, s3_bucket):
        options = s3_server.storage_options(secret=CANARY_SECRET)
        return lambda: open_target(f"s3://{s3_bucket}/runs/exp1", **options)


class S3BucketRootFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, s3_server, s3_bucket):
        options = s3_server.storage_options(secret=CANARY_SECRET)
        return lambda: open_target(f"s3://{s3_bucket}", **options)


class TestS3(BackendContractTests, S3Fixtures):
    pass


class TestS3BucketRoot(BackendContractTests, S3BucketRootFixtures):
    pass
