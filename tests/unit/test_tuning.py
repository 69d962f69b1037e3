"""Process tuning: the projector's short switch interval is set, and only when asked."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from services.tuning import PROJECTOR_SWITCH_INTERVAL, tune_projector_threads


@pytest.fixture
def interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_the_projector_hands_the_interpreter_lock_round_sooner(interval: float) -> None:
    assert interval > PROJECTOR_SWITCH_INTERVAL  # the default is 5 ms
    tune_projector_threads()
    assert sys.getswitchinterval() == pytest.approx(PROJECTOR_SWITCH_INTERVAL)
