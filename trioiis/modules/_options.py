"""Checking a built-in module's ``info.options``: unknown keys and wrong types are a
``ValueError`` with a one-line message (the server turns it into a ``ConfigError``)."""

from __future__ import annotations

from collections.abc import Mapping


def check_keys(module: str, options: Mapping[str, object], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{module}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def get_int(module: str, options: Mapping[str, object], key: str, default: int) -> int:
    value = options.get(key, default)
    if type(value) is not int or value < 0:
        raise ValueError(f"{module}: option {key!r} must be a non-negative integer, not {value!r}")
    return value


def get_bool(module: str, options: Mapping[str, object], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{module}: option {key!r} must be true or false, not {value!r}")
    return value


def get_str(module: str, options: Mapping[str, object], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{module}: option {key!r} must be a string, not {value!r}")
    return value


def get_str_list(
    module: str, options: Mapping[str, object], key: str, default: list[str] | None
) -> list[str] | None:
    value = options.get(key, default)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise ValueError(
            f"{module}: option {key!r} must be an array of non-empty strings, not {value!r}"
        )
    return list(value)
