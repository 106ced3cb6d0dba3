import pytest

from agent.backoff import retry_delay_seconds


@pytest.mark.parametrize(("retry", "expected"), [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)])
def test_retry_delay_doubles_from_the_base_without_jitter(retry: int, expected: float) -> None:
    assert retry_delay_seconds(retry, 10.0, uniform=lambda a, b: 0.0) == expected


def test_jitter_stays_within_ten_percent_of_the_nominal_delay() -> None:
    low = retry_delay_seconds(2, 10.0, uniform=lambda a, b: a)
    high = retry_delay_seconds(2, 10.0, uniform=lambda a, b: b)
    assert low == pytest.approx(18.0)
    assert high == pytest.approx(22.0)
    samples = {retry_delay_seconds(1, 10.0) for _ in range(200)}
    assert len(samples) > 100  # really random, so failures do not retry in lockstep
    assert all(9.0 <= s <= 11.0 for s in samples)


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="retry_number"):
        retry_delay_seconds(0, 10.0)
