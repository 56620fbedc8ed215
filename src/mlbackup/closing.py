"""A base for objects used as ``with`` blocks that close on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

__all__ = ["ClosingContext"]

_Self = TypeVar("_Self", bound="ClosingContext")


class ClosingContext:
    """``with obj:`` calls ``obj.close()`` on the way out, whatever happened inside."""

    def close(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
