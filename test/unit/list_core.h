/* core tests */
KWP_TEST_ENTRY(error_codes_distinct)
KWP_TEST_ENTRY(kbridge_delivery_reports_reach_loop)
KWP_TEST_ENTRY(log_ratelimit_drops_and_counts)
