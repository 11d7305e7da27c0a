/* auth/: the authenticator */
KWP_TEST_ENTRY(auth_basic)
KWP_TEST_ENTRY(auth_none)
