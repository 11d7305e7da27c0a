"""The C unit-test runner (test/unit/runner.c) on its hidden self-check.

With KWP_UNIT_SELFTEST=1 the runner also lists the tests of
test/unit/list_selftest.h, each misbehaving on purpose (an assertion, a
segfault, a hang with a child, exit(3), exit(0), a leak, a signed overflow).
Each must be reported by name with its verdict while the run goes on. No
broker needed; the binary is env KWP_UNIT_BIN, else the unit-tests next to
KWP_BIN when there is one (so the ASan e2e run checks the ASan runner), else
build/unit-tests.
"""

import os
import re
import subprocess
import time

import pytest

from conftest import ROOT

TIMEOUT = 1  # KWP_UNIT_TIMEOUT for the hanging test, seconds
SELFTESTS = ["selftest_pass", "selftest_assert", "selftest_segv",
             "selftest_hang", "selftest_exit", "selftest_exit_zero",
             "selftest_leak", "selftest_ubsan"]


def unit_bin():
    b = os.environ.get("KWP_UNIT_BIN")
    if not b and os.environ.get("KWP_BIN"):
        near = os.path.join(os.path.dirname(os.environ["KWP_BIN"]),
                            "unit-tests")
        if os.path.exists(near if os.path.isabs(near)
                          else os.path.join(ROOT, near)):
            b = near
    b = b or "build/unit-tests"
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def sanitizers():
    with open(unit_bin(), "rb") as f:
        data = f.read()
    return {"asan": b"__asan_init" in data,
            "ubsan": b"__ubsan_handle" in data}


def run(args, selftest=True, timeout=15, extra_env=None):
    if not os.path.exists(unit_bin()):
        pytest.fail("no unit-test binary at %s (make all)" % unit_bin())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KWP_UNIT_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env["KWP_UNIT_TIMEOUT"] = str(TIMEOUT)
    if selftest:
        env["KWP_UNIT_SELFTEST"] = "1"
    env.update(extra_env or {})
    t0 = time.monotonic()
    # A survivor of the hanging test (its forked child) would keep stdout open
    # and this would time out: the runner must kill the whole process group.
    r = subprocess.run([unit_bin()] + list(args), env=env, cwd=ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def expected_lines():
    """The result line of each self-test on this build."""
    san = sanitizers()
    exp = {
        "selftest_pass": "ok selftest_pass",
        "selftest_assert": "FAIL selftest_assert",
        "selftest_segv": "CRASH selftest_segv: signal 11 (Segmentation fault)",
        "selftest_hang": "TIMEOUT selftest_hang (%d s)" % TIMEOUT,
        "selftest_exit":
            "FAIL selftest_exit: exit status 3 before the test returned",
        "selftest_exit_zero":
            "FAIL selftest_exit_zero: exit status 0 before the test returned",
        "selftest_leak": "ok selftest_leak",
        "selftest_ubsan": "ok selftest_ubsan",
    }
    if san["asan"]:
        # ASan catches the SIGSEGV, reports it and exits 1; LeakSanitizer
        # fails the leaking test once it has returned.
        exp["selftest_segv"] = ("FAIL selftest_segv: exit status 1 before "
                                "the test returned")
        exp["selftest_leak"] = ("FAIL selftest_leak: exit status 1 after the "
                                "test returned (leak report?)")
    if san["ubsan"]:
        exp["selftest_ubsan"] = ("FAIL selftest_ubsan: exit status 1 before "
                                 "the test returned")
    return exp


RESULT = re.compile(r"^(ok|FAIL|CRASH|TIMEOUT) (\w+)")


def result_lines(out):
    return [ln for ln in out.splitlines() if RESULT.match(ln)]


def check_selftest_run(rc, out, err):
    exp = expected_lines()
    got = {RESULT.match(ln).group(2): ln for ln in result_lines(out)}
    assert sorted(got) == sorted(SELFTESTS), out
    for name in SELFTESTS:
        assert got[name] == exp[name], (name, out, err)
    failed = [n for n in SELFTESTS if not exp[n].startswith("ok ")]
    lines = out.splitlines()
    assert lines[-1] == "%d passed, %d failed" % (
        len(SELFTESTS) - len(failed), len(failed)), out
    assert sorted(lines[-2].split()[1:]) == sorted(failed), out
    assert lines[-2].startswith("failed:"), out
    assert rc == 1, (rc, out, err)
    # What each test said went through: the assertion on stderr, the passing
    # test's own stdout and stderr lines.
    assert re.search(r"selftest_assert: test/unit/test_selftest\.c:\d+: "
                     r"1 \+ 1 == 3 failed: 2 != 3", err + out), err
    assert "selftest_pass: a line on stdout" in out + err
    assert "selftest_pass: a line on stderr" in err + out
    san = sanitizers()
    if san["asan"]:
        assert "AddressSanitizer: SEGV" in err, err
        assert "LeakSanitizer: detected memory leaks" in err, err
    if san["ubsan"]:
        assert "runtime error: signed integer overflow" in err, err


def test_selftests_reported_by_name_and_verdict():
    rc, out, err, took = run(["selftest_"])
    check_selftest_run(rc, out, err)
    # One at a time, in list order, each line as its test ends.
    assert [RESULT.match(ln).group(2) for ln in result_lines(out)] == \
        SELFTESTS, out
    assert out.index("selftest_pass: a line on stdout") < \
        out.index("ok selftest_pass")
    assert TIMEOUT <= took < TIMEOUT + 8, took


def test_selftests_in_parallel():
    rc, out, err, took = run(["-j", "4", "selftest_"])
    check_selftest_run(rc, out, err)
    assert took < TIMEOUT + 8, took


def test_filter_selects():
    rc, out, err, _ = run(["selftest_pa"])
    assert result_lines(out) == ["ok selftest_pass"], out
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert rc == 0, (rc, out, err)
    rc, out, err, _ = run(["selftest_exit"])
    assert [RESULT.match(ln).group(2) for ln in result_lines(out)] == \
        ["selftest_exit", "selftest_exit_zero"], out
    assert out.splitlines()[-1] == "0 passed, 2 failed"
    assert rc == 1


def test_selftests_hidden_without_env():
    rc, out, err, _ = run(["selftest_"], selftest=False)
    assert rc == 1 and result_lines(out) == [], (out, err)
    assert 'no test name contains "selftest_"' in err


def listed_in_sources():
    """KWP_TEST_ENTRY names of test/unit/list_*.h, the self-check aside."""
    names = []
    unit = os.path.join(ROOT, "test", "unit")
    for fn in sorted(os.listdir(unit)):
        if fn.startswith("list_") and fn != "list_selftest.h":
            with open(os.path.join(unit, fn)) as f:
                names += re.findall(r"^KWP_TEST_ENTRY\((\w+)\)", f.read(),
                                    re.M)
    return names


def test_list():
    rc, out, err, _ = run(["--list"], selftest=False)
    assert rc == 0, err
    names = out.split()
    assert sorted(names) == sorted(listed_in_sources())
    assert not [n for n in names if n.startswith("selftest")]
    rc, out, _, _ = run(["--list"])
    assert out.split() == names + SELFTESTS
    rc, out, _, _ = run(["--list", "selftest_exit"])
    assert rc == 0 and out.split() == ["selftest_exit", "selftest_exit_zero"]


def test_bad_arguments():
    for args in (["-j", "0"], ["--nope"], ["a", "b"]):
        rc, _, err, _ = run(args, selftest=False)
        assert rc == 2 and err, args
    rc, out, err, _ = run(["selftest_pass"],
                          extra_env={"KWP_UNIT_TIMEOUT": "soon"})
    assert rc == 2 and "KWP_UNIT_TIMEOUT" in err and not out, (out, err)
