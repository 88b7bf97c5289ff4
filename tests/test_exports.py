"""The public API is exactly what ``trioiis.__all__`` says, and reads as ``trioiis.X``."""

from __future__ import annotations

import trioiis
import trioiis.testing


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(trioiis) if not name.startswith("_")}
    # Submodules are importable but are not names of the API.
    modules = {name for name in public if type(getattr(trioiis, name)).__name__ == "module"}
    assert set(trioiis.__all__) == public - modules - {"annotations"}
    constants = [n for n in trioiis.__all__ if n.isupper()]
    others = [n for n in trioiis.__all__ if not n.isupper()]
    assert trioiis.__all__ == sorted(constants) + sorted(others)


def test_exported_classes_say_trioiis_in_tracebacks() -> None:
    for name in trioiis.__all__:
        obj = getattr(trioiis, name)
        if isinstance(obj, type):
            assert obj.__module__ == "trioiis", name


def test_testing_exports_resolve() -> None:
    for name in trioiis.testing.__all__:
        assert getattr(trioiis.testing, name) is not None
