/* GET /echo: a diagnostic WebSocket that sends every message back,
 * unchanged (server.echo-endpoint-enabled). Worker thread. */
#include "core/base/error.h"
#include "core/dialect/dialect.h"

#include <uv.h>

static int echo_message(kwp_conn_t *conn, void *state, int opcode,
                        const uint8_t *data, size_t len) {
  int rc = kwp_conn_ws_send(conn, opcode, data, len);
  return rc == KWP_EBACKPRESSURE || rc == UV_ECANCELED ? 0 : rc;
}

static const kwp_ws_handler_t echo_handler = {
    .name = "echo",
    .message = echo_message,
};

static int echo_enabled(const kwp_config_t *cfg) {
  return cfg->server.echo_endpoint_enabled;
}

static int echo_parse(kwp_upgrade_t *up, const char *url, void **state,
                      char *msg, size_t msglen) {
  *state = NULL;
  return 0;
}

static void echo_open(kwp_upgrade_t *up, void *state,
                      kwp_claim_handle_t *claim) {
  kwp_upgrade_accept(up, &echo_handler, NULL);
}

static const char *const echo_paths[] = {"/echo", NULL};

const kwp_endpoint_t kwp_dialect_echo = {
    .name = "echo",
    .paths = echo_paths,
    .enabled = echo_enabled,
    .parse = echo_parse,
    .open = echo_open,
};
