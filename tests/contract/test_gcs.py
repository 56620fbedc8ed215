import pytest
from canary import CANARY_TOKEN

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


@pytest.fixture
def gcs_options(gcs_server, google_token_server, gcs_key_file):
    # The service-account path runs for real: a signed JWT exchanged for a (canary) token.
    google_token_server.access_token = CANARY_TOKEN
    return {"endpoint_url": gcs_server.endpoint_url, "token": str(gcs_key_file), "project": "test"}


class GCSFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, gcs_bucket, gcs_options):
        return lambda: open_target(f"gs://{gcs_bucket}/runs/exp1", **gcs_options)


class GCSAnonymousFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, gcs_server, gcs_bucket):
        return lambda: open_target(f"gs://{gcs_bucket}", **gcs_server.storage_options())


class TestGCS(BackendContractTests, GCSFixtures):
    pass


class TestGCSAnonymousBucketRoot(BackendContractTests, GCSAnonymousFixtures):
    pass
