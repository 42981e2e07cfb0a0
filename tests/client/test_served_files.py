"""The table of result files fal serves (client/storage.py ServedFiles): what a chained edit may
hand back to fal, and for how long. Plain data and a clock: nothing here needs a server."""
from __future__ import annotations

import pytest

from fal_kontext.client.storage import (SERVED_URL_MARGIN_SECONDS, ServedFile, ServedFiles,
                                        reuse_deadline)

FAL, OTHER = "https://queue.fal.run", "http://127.0.0.1:9"
URL = "https://v3.fal.media/files/rabbit/out_0.jpg"


def table(now: list[float], size: int = 8) -> ServedFiles:
    return ServedFiles(max_entries=size, clock=lambda: now[0])


def test_a_day_long_file_is_handed_back_until_an_hour_before_fal_drops_it():
    assert reuse_deadline(1000.0, 86400) == 1000.0 + 86400 - SERVED_URL_MARGIN_SECONDS
    # A short lifetime keeps half of itself in reserve instead of an hour it does not have.
    assert reuse_deadline(1000.0, 600) == 1000.0 + 300


def test_a_served_file_is_found_by_origin_and_pixels_until_its_deadline():
    now = [0.0]
    served = table(now)
    served.put("pixels-a", ServedFile(URL, FAL, reuse_until=100.0))
    assert served.get(FAL, "pixels-a") == URL
    assert served.get(FAL, "pixels-b") is None, "other pixels"
    assert served.get(OTHER, "pixels-a") is None, "another fal never gets this one's URL"
    now[0] = 100.0
    assert served.get(FAL, "pixels-a") is None and len(served) == 0


def test_a_file_past_its_deadline_is_not_remembered_at_all():
    now = [50.0]
    served = table(now)
    served.put("pixels-a", ServedFile(URL, FAL, reuse_until=50.0))
    assert len(served) == 0


def test_a_url_fal_refused_is_never_handed_out_again_even_if_offered_again():
    now = [0.0]
    served = table(now)
    served.put("pixels-a", ServedFile(URL, FAL, reuse_until=100.0))
    served.refuse(URL)
    assert served.get(FAL, "pixels-a") is None
    served.put("pixels-a", ServedFile(URL, FAL, reuse_until=100.0))  # e.g. a cached entry
    assert served.get(FAL, "pixels-a") is None
    served.put("pixels-a", ServedFile(URL + "?v2", FAL, reuse_until=100.0))
    assert served.get(FAL, "pixels-a") == URL + "?v2"


@pytest.mark.parametrize("size", [1, 3])
def test_the_table_is_bounded_least_recently_used_first_out(size):
    now = [0.0]
    served = table(now, size)
    for index in range(size + 2):
        served.put(f"p{index}", ServedFile(f"{URL}?{index}", FAL, reuse_until=100.0))
        if index == 0:
            served.get(FAL, "p0")
    assert len(served) == size
    assert served.get(FAL, f"p{size + 1}") == f"{URL}?{size + 1}"
    assert served.get(FAL, "p0") is None


def test_refused_urls_are_bounded_too():
    served = table([0.0], size=2)
    for index in range(5):
        served.refuse(f"{URL}?{index}")
    served.put("p", ServedFile(f"{URL}?0", FAL, reuse_until=100.0))
    assert served.get(FAL, "p") == f"{URL}?0", "the oldest refusal was forgotten"
