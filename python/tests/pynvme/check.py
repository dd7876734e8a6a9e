"""Compares a pytest JUnit XML result of PyNVMe's suite with the known-failures lists.

    check.py RESULTS.xml[:RESULTS2.xml...] [LIST...]

Each line of a list is ``<test id> | <reason>``; a test id is ``file::name`` (without
parameters: every parametrisation of a listed test may fail). Exit status 1 when a test
failed that is not listed, or a listed test passed in every parametrisation that ran,
unless its reason starts with "wall clock": such a test measures the host's timing and
may pass or fail from one run to the next.
"""

import os
import sys
import xml.etree.ElementTree as ET


def load_known(path):
    known = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test, _, reason = line.partition("|")
            known[test.strip()] = reason.strip()
    return known


def test_id(case):
    path = case.get("classname", "").replace(".", "/")
    name = case.get("name", "").split("[")[0]
    return f"{path}.py::{name}"


def main(junit, known_paths):
    known = {}
    for path in known_paths:
        known.update(load_known(path))
    lists = ", ".join(os.path.basename(p) for p in known_paths) or "no known-failures list"
    outcome = {}
    cases = [c for path in junit.split(":") if os.path.exists(path) for c in ET.parse(path).getroot().iter("testcase")]
    for case in cases:
        tid = test_id(case)
        if case.find("skipped") is not None:
            state = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            state = "failed"
        else:
            state = "passed"
        outcome.setdefault(tid, []).append(state)
    passed = sum(1 for s in outcome.values() if all(x != "failed" for x in s) and "passed" in s)
    failed = sorted(t for t, s in outcome.items() if "failed" in s)
    skipped = sorted(t for t, s in outcome.items() if all(x == "skipped" for x in s))
    unexpected = [t for t in failed if t not in known]
    stale = [t for t, s in outcome.items()
             if t in known and "failed" not in s and "passed" in s and not known[t].startswith("wall clock")]
    by_file = {}
    for t, s in outcome.items():
        f = by_file.setdefault(t.split("::")[0], [0, 0])
        f[0] += 1
        f[1] += "failed" not in s and "passed" in s
    print(f"PyNVMe suite on nvplan: {len(outcome)} test functions, {passed} passed, "
          f"{len(failed)} failed ({len(failed) - len(unexpected)} listed), {len(skipped)} skipped")
    for f, (n, p) in sorted(by_file.items()):
        print(f"  {f}: {p} of {n} passed")
    for t in unexpected:
        print(f"  failed and not in {lists}: {t}")
    for t in stale:
        print(f"  listed in {lists} but passed: {t} (remove it from the list)")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
