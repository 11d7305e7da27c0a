/* The runner's self-check, listed only when KWP_UNIT_SELFTEST=1 (never in a
 * plain run): one test per verdict. Checked by test/e2e/test_unit_runner.py. */
KWP_TEST_ENTRY(selftest_pass)
KWP_TEST_ENTRY(selftest_assert)
KWP_TEST_ENTRY(selftest_segv)
KWP_TEST_ENTRY(selftest_hang)
KWP_TEST_ENTRY(selftest_exit)
KWP_TEST_ENTRY(selftest_exit_zero)
KWP_TEST_ENTRY(selftest_leak)
KWP_TEST_ENTRY(selftest_ubsan)
