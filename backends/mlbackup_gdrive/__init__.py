"""The ``gdrive`` backend: backups in Google Drive through the Drive API (pydrive2).

URLs: ``gdrive://root/<path>`` (My Drive) or ``gdrive://<folder-id>/<path>`` (a folder shared
with the account, or a folder in a shared drive). Options:

============================  ===========================================================
``service_account_json``      path of a service-account key (honoured as given, token_uri
                              included)
``service_account_json_env``  name of an environment variable holding that key's JSON
``credentials_file``          a saved OAuth token (pydrive2 / oauth2client format), for
                              headless reuse of a user's consent
``colab``                     use Colab's login (the default on Colab)
``api_endpoint``              the Drive API base URL (tests point it at a fake Drive)
``chunk_size``                bytes per resumable-upload chunk (default 8 MiB)
``timeout``                   seconds per request (default 60)
============================  ===========================================================

See ``docs/backends/drive.md``.
"""

from .backend import GDriveBackend

__all__ = ["GDriveBackend"]
