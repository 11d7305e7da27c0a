/* Every WebSocket endpoint the proxy serves, in one list. Pure, any thread. */
#include "core/dialect/dialect.h"

#include <string.h>

static const kwp_endpoint_t *const endpoints[] = {
    &kwp_dialect_echo,
    &kwp_dialect_wsproxy_in,
    &kwp_dialect_wsproxy_out,
};

const kwp_endpoint_t *kwp_dialect_find(const char *path, size_t len,
                                       const kwp_config_t *cfg) {
  for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
    const kwp_endpoint_t *ep = endpoints[i];
    for (const char *const *p = ep->paths; *p; p++)
      if (strlen(*p) == len && !memcmp(*p, path, len))
        return !ep->enabled || ep->enabled(cfg) ? ep : NULL;
  }
  return NULL;
}
