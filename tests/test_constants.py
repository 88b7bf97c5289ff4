"""HRESULT <-> Win32 code: the access log's sc-win32-status and HResultError.win32_code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import trioiis
from trioiis._constants import E_FAIL, S_OK, hresult_from_win32, win32_from_hresult


@given(st.integers(min_value=1, max_value=0xFFFF))
def test_win32_code_round_trips_through_its_hresult(code: int) -> None:
    assert win32_from_hresult(hresult_from_win32(code)) == code
    assert trioiis.HResultError(hresult=hresult_from_win32(code)).win32_code == code


def test_hresults_without_a_win32_code() -> None:
    assert win32_from_hresult(S_OK) == S_OK
    assert win32_from_hresult(E_FAIL) == E_FAIL  # HResultError.win32_code's fallback
    assert win32_from_hresult(E_FAIL, otherwise=0) == 0  # the access log's
    assert trioiis.HResultError(hresult=E_FAIL).win32_code == E_FAIL
