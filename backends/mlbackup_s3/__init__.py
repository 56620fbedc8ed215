"""The ``s3`` backend: backups in an S3 bucket through s3fs (``pip install "mlbackup[s3]"``).

URL: ``s3://<bucket>/<prefix>``. Options (keyword arguments to
[`mlbackup.open_target()`][mlbackup.open_target],
``-o KEY=VALUE`` in the CLI, ``[storage_options]`` in the config file):

=================  ==============================================================
``endpoint_url``   an S3-compatible endpoint (MinIO, R2, moto, ...); AWS if unset
``key``/``secret`` an access key pair; ``token`` adds a session token
``profile``        a profile from ``~/.aws/credentials``
``anon``           ``true`` for anonymous access to a public bucket
``region``         the bucket's region
``requester_pays`` ``true`` for requester-pays buckets
``part_size``      bytes per multipart part (default 8 MiB, at least 5 MiB)
``connect_timeout`` / ``read_timeout``  seconds (default 5 / 20)
=================  ==============================================================

Without credential options the default AWS chain applies (environment, shared files,
instance role). Verification uses md5: S3 reports it as the ETag of single-part objects, and as
an md5 of the part md5s for multipart ones, both checked after each upload.
"""

from .backend import S3Backend

__all__ = ["S3Backend"]
