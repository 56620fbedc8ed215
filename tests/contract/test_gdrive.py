import pytest
from canary import CANARY_TOKEN

from mlbackup import open_target
from mlbackup.testing.contract import BackendContractTests, BackendFixtures


@pytest.fixture
def gdrive_options(drive_api, google_token_server, gcs_key_file):
    # A service-account key whose token_uri is the loopback token endpoint (a real JWT grant).
    google_token_server.access_token = CANARY_TOKEN
    return {"service_account_json": str(gcs_key_file), "api_endpoint": drive_api.endpoint_url}


class GDriveFixtures(BackendFixtures):
    @pytest.fixture
    def target_factory(self, gdrive_options):
        return lambda: open_target("gdrive://root/runs/exp1", **gdrive_options)


class TestGDrive(BackendContractTests, GDriveFixtures):
    pass
