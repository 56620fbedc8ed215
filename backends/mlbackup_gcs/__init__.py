"""The ``gs`` backend: backups in a Google Cloud Storage bucket through gcsfs
(``pip install "mlbackup[gcs]"``).

URL: ``gs://<bucket>/<prefix>`` (``gcs://`` works too). Options:

=================  ==============================================================
``token``          ``google_default`` (the default: Application Default Credentials,
                   which on Colab is your login after ``auth.authenticate_user()``),
                   a service-account or authorized-user JSON key (a path, or its
                   parsed content), ``cloud`` (the VM's metadata server), or ``anon``
``project``        the billing project
``endpoint_url``   another endpoint (an emulator)
``requester_pays`` ``true`` for requester-pays buckets
``part_size``      bytes per resumable-upload part (default 16 MiB; a multiple of 256 KiB)
``timeout``        seconds per request (default 30)
=================  ==============================================================

Credentials are exchanged for a token when the target opens, so a revoked key or a missing
login fails in seconds with the fix. Verification uses the md5 GCS reports for every upload.
"""

from .backend import GCSBackend

__all__ = ["GCSBackend"]
