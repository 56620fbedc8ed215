"""Which backend serves which URL scheme.

Backends are plugins, ours included: the core imports none of them by name. Two ways to add one:

1. Declare an entry point in the plugin's ``pyproject.toml``::

       [project.entry-points."mlbackup.backends"]
       myscheme = "my_package.backend:MyBackend"

2. Register at run time (handy in tests)::

       from mlbackup import register_backend
       register_backend("myscheme", MyBackend)            # or "my_package.backend:MyBackend"

Entry points are loaded lazily, on the first URL that needs them. A plugin whose client
library is missing (``s3`` without s3fs, say) gets an error naming the extra to install: the
plugin wraps that import in `needs_extra()`, so each plugin names its own extra.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import ConfigError, UnknownBackendError

if TYPE_CHECKING:
    from .backend import Backend

__all__ = [
    "MissingExtraError",
    "available_backends",
    "get_backend_class",
    "mounted_backends",
    "needs_extra",
    "register_backend",
    "require_installed",
]


class MissingExtraError(ImportError):
    """A plugin's client library is not installed; the message says what to install."""

    def __init__(self, extra: str, package: str, cause: ImportError) -> None:
        self.install = f'pip install "{package}[{extra}]"'
        super().__init__(f"{cause}; install it with: {self.install}")


@contextmanager
def needs_extra(extra: str, package: str = "mlbackup") -> Iterator[None]:
    """Wrap a plugin's imports of its client library, so a missing one names the extra.

    Examples:
        >>> with needs_extra("s3"):
        ...     import json  # a plugin imports s3fs here
    """
    try:
        yield
    except ImportError as exc:
        raise MissingExtraError(extra, package, exc) from exc


def require_installed(*modules: str) -> None:
    """Raise ``ModuleNotFoundError`` for the first of ``modules`` that is not installed,
    importing none of them: inside `needs_extra()`, a plugin whose client library is slow to
    import checks it this way at load time and imports it when a call first needs it.

    Examples:
        >>> require_installed("json")
        >>> try:
        ...     with needs_extra("s3"):
        ...         require_installed("no_such_client")
        ... except MissingExtraError as exc:
        ...     print(exc.install)
        pip install "mlbackup[s3]"
    """
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


ENTRY_POINT_GROUP = "mlbackup.backends"
#: Backends a sync client mounts as a local folder (see `Backend.mount_root()`).
MOUNTS_GROUP = "mlbackup.mounts"
#: Backends that exist for tests (in ``mlbackup.testing``): served, never offered as storage.
_TEST_ONLY_MODULE = "mlbackup.testing."

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*$")

# Registered at run time: scheme -> class, or "module:attr" to import on first use.
_registered: dict[str, type[Backend] | str] = {}


def _check_scheme(scheme: str) -> str:
    if not _SCHEME_RE.match(scheme):
        raise ConfigError(
            f"invalid backend scheme {scheme!r}: use lowercase letters, digits, '+', '-' or '.', "
            "starting with a letter"
        )
    return scheme


def register_backend(scheme: str, backend: type[Backend] | str, *, clobber: bool = False) -> None:
    """Make ``backend`` serve URLs of ``scheme`` in this process.

    Args:
        scheme: the URL scheme, e.g. ``"myscheme"`` for ``myscheme://...``.
        backend: a `Backend` subclass, or ``"module:attr"`` naming one.
        clobber: replace a backend already registered for ``scheme``.

    Raises:
        ConfigError: the scheme is malformed, or taken and ``clobber`` is false.

    Examples:
        >>> from mlbackup.testing.memory import MemoryBackend
        >>> register_backend("mymem", MemoryBackend)
        >>> "mymem" in available_backends()
        True
    """
    _check_scheme(scheme)
    if not clobber and scheme in _registered:
        raise ConfigError(
            f"a backend is already registered for {scheme!r}; pass clobber=True to replace it"
        )
    _registered[scheme] = backend


#: The local folder backend's entry points, found without reading installed packages' metadata
#: (which costs more than the rest of a CLI's no-change backup); a test checks they agree.
_BUILTIN = {"file": "mlbackup_local:LocalBackend", "local": "mlbackup_local:LocalBackend"}


def _entry_points(group: str = ENTRY_POINT_GROUP) -> dict[str, str]:
    from importlib.metadata import entry_points  # imported when first needed: it is slow

    return {ep.name: ep.value for ep in entry_points(group=group)}


@functools.cache
def _mount_specs() -> tuple[str, ...]:
    return tuple(sorted(set(_entry_points(MOUNTS_GROUP).values())))


def mounted_backends() -> list[type[Backend]]:
    """The installed backends of stores a sync client mounts as a local folder (the
    ``mlbackup.mounts`` entry points), for `Backend.mount_root()`; one that cannot be imported
    is left out (it serves no path then)."""
    from .backend import Backend

    found = []
    for spec in _mount_specs():
        try:
            backend = _load(spec)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break every backup
            _warn_once(spec, f"could not be imported ({exc})")
            continue
        if not (isinstance(backend, type) and issubclass(backend, Backend)):
            _warn_once(spec, "is not a Backend subclass")
            continue
        found.append(backend)
    return found


@functools.cache
def _warn_once(spec: str, problem: str) -> None:
    import logging

    logging.getLogger("mlbackup").warning(
        "the mounted store %s (entry point group %s) %s; it is ignored", spec, MOUNTS_GROUP, problem
    )


def available_backends() -> list[str]:
    """The schemes served in this process: registered ones and installed entry points.

    Examples:
        >>> "file" in available_backends()
        True
    """
    installed = {s for s, spec in _entry_points().items() if not spec.startswith(_TEST_ONLY_MODULE)}
    return sorted(set(_registered) | installed)


def _load(spec: str) -> type[Backend]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


def get_backend_class(scheme: str) -> type[Backend]:
    """Return the backend class serving ``scheme``.

    Raises:
        UnknownBackendError: no backend serves ``scheme``; the message lists the installed
            ones and, for a known scheme, the extra to install.
    """
    found = _registered.get(scheme) or _BUILTIN.get(scheme) or _entry_points().get(scheme)
    if found is None:
        known = available_backends()
        installed = ", ".join(known) or "none"
        fix = "check the URL, or install its plugin"
        import difflib

        close = difflib.get_close_matches(scheme, known, n=1)
        if close:
            fix = f"did you mean {close[0]!r} ({close[0]}://...)?"
        raise UnknownBackendError(
            f"no backend for URL scheme {scheme!r} (installed: {installed}); {fix}"
        )
    if isinstance(found, str):
        try:
            found = _load(found)
        except MissingExtraError as exc:
            raise UnknownBackendError(
                f"the backend for {scheme!r} needs a library that is not installed ({exc})"
            ) from exc
        except ImportError as exc:
            raise UnknownBackendError(
                f"the backend for {scheme!r} could not be imported ({exc}); reinstall the "
                f"plugin serving {scheme!r}"
            ) from exc
    return found
