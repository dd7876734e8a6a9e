"""Compares a pytest JUnit XML result of PyNVMe's suite with the known-failures lists.

    check.py RESULTS.xml [LIST...]

Each line of a list is ``<test id> | <reason>``; a test id is ``file::name`` (without
parameters: every parametrisation of a listed test may fail). Exit status 1 when a test
failed that is not listed, or a listed test passed in every parametrisation that ran.
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
    for case in ET.parse(junit).getroot().iter("testcase"):
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
    stale = [t for t, s in outcome.items() if t in known and "failed" not in s and "passed" in s]
    print(f"PyNVMe suite on nvplan: {len(outcome)} test functions, {passed} passed, "
          f"{len(failed)} failed ({len(failed) - len(unexpected)} listed), {len(skipped)} skipped")
    for t in unexpected:
        print(f"  failed and not in {lists}: {t}")
    for t in stale:
        print(f"  listed in {lists} but passed: {t} (remove it from the list)")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
