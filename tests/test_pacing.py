"""The pacer with an injected clock: even spacing, no bursts, and a shared pause on throttling."""

from __future__ import annotations

import pytest

from etl.post.pacing import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_sends_are_evenly_spaced():
    clock = FakeClock()
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        pacer.acquire()
        starts.append(clock.now)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)] == [0.25] * 4


def test_idle_time_is_not_saved_up_for_a_burst():
    clock = FakeClock()
    pacer = Pacer(2, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    clock.now += 10  # a long quiet spell
    assert pacer.acquire() == 0
    assert pacer.acquire() == pytest.approx(0.5)


def test_a_throttle_pauses_everyone_for_retry_after():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.pause(1.0)
    assert pacer.acquire() == pytest.approx(1.0)
    assert pacer.acquire() == pytest.approx(1 / 9)  # and a slower pace after it
    assert pacer.throttled == 1


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        Pacer(0)


def test_throttling_slows_the_pace_and_answers_win_it_back_up_to_the_ceiling():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    pacer.pause(0)
    assert pacer.rate == pytest.approx(9)
    pacer.acquire()
    assert pacer.acquire() == pytest.approx(1 / 9)
    for _ in range(1000):
        pacer.answered()
    assert pacer.rate == 10  # never above --rate


def test_the_pace_has_a_floor():
    pacer = Pacer(1)
    for _ in range(1000):
        pacer.pause(0)
    assert pacer.rate == pytest.approx(1 / 60)


def test_a_burst_goes_at_once_then_the_pace_holds_and_a_pause_empties_it():
    clock = FakeClock()
    pacer = Pacer(2, burst=3, clock=clock, sleep=clock.sleep)
    assert [pacer.acquire() for _ in range(5)] == [0, 0, 0, pytest.approx(0.5), pytest.approx(0.5)]
    clock.now += 10  # a quiet spell fills the bucket again, to 3 and no more
    assert [pacer.acquire() for _ in range(4)] == [0, 0, 0, pytest.approx(0.5)]
    pacer.pause(5)
    waits = [pacer.acquire() for _ in range(3)]
    assert waits[0] == pytest.approx(5) and waits[1:] == [pytest.approx(0.5 / 0.9)] * 2
