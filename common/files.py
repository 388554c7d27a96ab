"""Keep stored files and database rows together: a failed write leaves neither behind."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.files.storage import Storage


@contextmanager
def delete_on_error(storage: Storage, *names: str) -> Iterator[None]:
    """Delete the named files from storage if the block raises.

    Wrap the database transaction that refers to files saved just before it;
    the transaction rolls back and the files go with it.
    """
    try:
        yield
    except BaseException:
        for name in names:
            if name:
                storage.delete(name)
        raise
