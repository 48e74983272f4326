"""A harness as a pytest user writes it: plain functions and asserts against a running dmaemu
(DMAEMU_URL, default http://127.0.0.1:3000). `python3 -m pytest clients/python` runs them;
without pytest, `python3 -m unittest discover -s clients/python` runs them too (see
test_dmaemu_client.py)."""
import os

from dmaemu_client import Client, DmaemuHttpError

URL = os.environ.get("DMAEMU_URL", "http://127.0.0.1:3000")

# The 2015 thread's {64k, 16k, 64k} list.
THREAD_SG = [
    {"phys": "0x90000000", "length": 65536},
    {"phys": "0x91000000", "length": 16384},
    {"phys": "0x92000000", "length": 65536},
]


def test_thread_list_is_three_segments_in_one_iova_range() -> None:
    c = Client(URL)
    s = c.create_session({"layout": "linux"})
    r = c.map_sg(s["id"], {"dir": "to_device", "sg": THREAD_SG})
    # Worked by hand (semantics §3, §5): 36 granules, size-aligned to 64 below the 32-bit limit:
    # pfn (0x100000 - 36) & ~63 = 0xfffc0; __finalise_sg joins nothing past 64 KiB (no dma_parms).
    assert r["segments"] == [
        {"dma_address": "0xfffc0000", "dma_length": 65536},
        {"dma_address": "0xfffd0000", "dma_length": 16384},
        {"dma_address": "0xfffd4000", "dma_length": 65536},
    ]
    assert r["iova"] == {"start": "0xfffc0000", "size": 147456}
    handle = r["handle"]
    assert handle is not None
    c.unmap(s["id"], {"handle": handle})
    assert c.delete_session(s["id"])["leaked_mappings"] == 0


def test_max_segment_size_of_the_whole_list_gives_one_segment() -> None:
    c = Client(URL)
    s = c.create_session({"layout": "linux", "device": {"max_segment_size": 4294967295}})
    r = c.map_sg(s["id"], {"dir": "to_device", "sg": THREAD_SG}, explain=True)
    # §3 step 5: nothing stops concatenation once max_segment_size covers 147456 bytes.
    assert r["segments"] == [{"dma_address": "0xfffc0000", "dma_length": 147456}]
    assert r["explain"]["one_segment"] is True
    c.delete_session(s["id"])


def test_an_unknown_session_is_an_http_error_with_its_code() -> None:
    try:
        Client(URL).get_session("no-such-session")
    except DmaemuHttpError as e:
        assert (e.status, e.code) == (404, "DMAEMU_SESSION_NOT_FOUND")
    else:
        raise AssertionError("no error for an unknown session")
