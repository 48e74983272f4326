"""The Python client against a running dmaemu (DMAEMU_URL), with the standard library's unittest:
the stale-data walk-through (docs/walkthrough-stale-data.md), a Linux-reported failure as an
answer, and, so that `python3 -m unittest` needs no pytest, the pytest-style example functions of
test_thread_example.py."""
import os
import unittest

import test_thread_example
from dmaemu_client import Client, DmaemuHttpError

URL = os.environ.get("DMAEMU_URL", "http://127.0.0.1:3000")


class StaleData(unittest.TestCase):
    def test_a_read_without_sync_for_cpu_sees_the_stale_cache_line(self) -> None:
        c = Client(URL)
        s = c.create_session({"device": {"coherent": False}})["id"]
        self.assertEqual(c.cpu_write(s, {"phys": "0x81000000", "data": "ERERERERERERERER"}), {"written": 12})
        m = c.map_page(s, {"phys": "0x81000000", "size": 4096, "dir": "from_device"})
        # §6 and §5: one IOVA page, top-down from the 32-bit limit.
        self.assertEqual(m["dma_address"], "0xfffff000")
        c.device_write(s, {"dma_address": "0xfffff000", "data": "////////////////"})
        stale = c.cpu_read(s, {"phys": "0x81000000", "length": 12})
        # §8: the CPU still hits its cached 0x11 line; dma-debug flags the access.
        self.assertEqual(stale["data"], "ERERERERERERERER")
        self.assertEqual([d["check"] for d in stale.get("debug", [])], ["cpu_access_device_owned"])
        handle = m["handle"]
        assert handle is not None
        self.assertEqual(c.sync(s, {"handle": handle, "for": "cpu"})["cache"], "invalidate")
        self.assertEqual(c.cpu_read(s, {"phys": "0x81000000", "length": 12})["data"], "////////////////")
        c.unmap(s, {"handle": handle})
        self.assertEqual(c.delete_session(s)["leaked_mappings"], 0)

    def test_a_mapping_linux_fails_is_an_answer_not_an_exception(self) -> None:
        c = Client(URL)
        s = c.create_session({"device": {"dma_mask": "0xfff"}})["id"]
        # dma_mask 0xfff: no IOVA page fits below it (pfn 0 is never handed out), so Linux fails the map.
        r = c.map_page(s, {"phys": "0x10000", "size": 65536, "dir": "to_device"})
        self.assertIsNone(r["handle"])
        self.assertEqual(r["dma_address"], "0xffffffffffffffff")
        self.assertIn("error", r)
        with self.assertRaises(DmaemuHttpError) as e:
            c.unmap(s, {"handle": 1})
        self.assertEqual(e.exception.code, "DMAEMU_HANDLE_NOT_FOUND")
        c.delete_session(s)


def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite, pattern: object) -> unittest.TestSuite:
    # The pytest-style functions, each as a unittest case.
    for name in sorted(n for n in dir(test_thread_example) if n.startswith("test_")):
        tests.addTest(unittest.FunctionTestCase(getattr(test_thread_example, name), description=name))
    return tests
