"""Read pytest's JUnit XML reports (.ci/run): list the test files with skipped cases, or
fail when a case skipped because a Python module was missing.

    python .ci/skipped_files.py files REPORT.xml   -> the files, one per line
    python .ci/skipped_files.py check REPORT.xml   -> exit 1 if a skip names a missing module

The first pass (the README's command, without the optional peers) skips every test that
compares with PyTorch, Keras or transformers; the second pass re-runs exactly those files
with the peers installed, so that no file can be left out of a hand-kept list, and then
checks that none of them still skipped for a missing module.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET

MISSING = ("could not import", "no module named", "not installed", "not available")


def _file(classname):
    """The test file of a JUnit classname: tests.test_x or tests.test_x.TestClass."""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.exists(path):
            return path
    raise SystemExit(f"no test file for the JUnit classname {classname!r}")


def skipped(report):
    """(file, message) of every skipped test case in a JUnit XML report. A module skipped
    at collection (a module-level importorskip) is a case with an empty classname, named by
    the module's dotted path."""
    for case in ET.parse(report).getroot().iter("testcase"):
        for skip in case.findall("skipped"):
            where = case.get("classname") or case.get("name", "")
            yield _file(where), (skip.get("message") or "") + " " + (skip.text or "")


def main(argv):
    what, report = argv
    if what == "files":
        for name in sorted({f for f, _ in skipped(report)}):
            print(name)
        return 0
    bad = [(f, m.strip()) for f, m in skipped(report) if any(s in m.lower() for s in MISSING)]
    for f, m in bad:
        print(f"skipped for a missing module: {f}: {m[:200]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
