/*
 * Configuration: HOCON `application.conf` (the subset real configs use) with
 * the kafka-websocket-proxy key tree `kafka.ws.proxy.*`, its defaults and its
 * WSPROXY_* environment overrides. Loaded once on the main thread before any
 * other thread starts; read-only (and so shareable by every thread) after.
 */
#ifndef KWP_CONFIG_H
#define KWP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A key/value pair of a free-form properties object (Kafka client props). */
typedef struct kwp_kv {
  char *key;
  char *value;
} kwp_kv_t;

typedef struct kwp_props {
  kwp_kv_t *items;
  size_t count;
} kwp_props_t;

/* A `client-specific-limits` entry; -1 means "not set" for the numbers. */
typedef struct kwp_client_limit {
  char *id; /* group-id (consumer) or producer-id (producer) */
  int64_t messages_per_second;
  int64_t max_connections;
  int64_t batch_size; /* consumers only */
} kwp_client_limit_t;

typedef struct kwp_limits {
  int64_t default_messages_per_second;
  int64_t default_max_connections_per_client;
  int64_t default_batch_size; /* consumers only */
  kwp_client_limit_t *client_specific;
  size_t client_specific_count;
} kwp_limits_t;

/* Durations are in milliseconds; "unset" strings are NULL. */
typedef struct kwp_config {
  struct {
    char *server_id;
    char *bind_interface;
    int port;
    int secure_health_check_endpoint;
    struct {
      int enabled;
      char *bind_interface;
      int port;
    } admin;
    struct {
      int enabled, ssl_only;
      char *bind_interface;
      int port; /* 0 = unset */
      char *keystore_location, *keystore_password;
    } ssl;
    struct {
      int enabled;
      char *realm, *username, *password;
    } basic_auth;
    struct {
      int enabled;
      char *well_known_url, *audience, *realm;
      int allow_detailed_logging;
      int64_t revalidation_interval_ms;
      int64_t revalidation_errors_limit;
      int require_https;
      char *jwt_kafka_username_key, *jwt_kafka_password_key;
      int kafka_token_auth_only;
    } openid_connect;
    int64_t jmx_proxy_status_interval_ms;
    int64_t broker_resolution_timeout_ms;
    int64_t broker_resolution_retries;
    int64_t broker_resolution_retry_interval_ms;
    /* Our additions (kafka-ws-proxy in C). */
    int worker_threads;             /* 0 = number of cores */
    size_t max_message_size;        /* WebSocket message bound -> close 1009 */
    size_t max_connections;         /* over it -> 503 */
    size_t max_header_size;         /* request line + headers -> 431 */
    size_t max_header_count;        /* -> 431 */
    size_t max_request_body_size;   /* -> 413 */
    size_t max_buffered_send_bytes; /* per socket; stop reading above it */
    int64_t request_timeout_ms;     /* full request must arrive -> 408 */
    int64_t idle_timeout_ms;        /* idle keep-alive HTTP connection */
    int64_t ws_keep_alive_interval_ms; /* server ping after this much quiet */
    int64_t ws_idle_timeout_ms; /* nothing received for this long -> 1001 */
    int64_t shutdown_grace_period_ms;
    int64_t lingering_timeout_ms; /* a closing socket lives this long at most */
    int echo_endpoint_enabled;
  } server;

  struct {
    char *bootstrap_hosts; /* required outside dev mode */
    int64_t broker_resolution_timeout_ms;
    int64_t metadata_timeout_ms; /* ours: bound on a cluster-info request */
    struct {
      char *url;
      int auto_register_schemas;
      kwp_props_t properties;
    } schema_registry;
    int monitoring_enabled;
    kwp_props_t properties; /* passed to librdkafka (after key mapping) */
  } kafka_client;

  struct {
    kwp_props_t kafka_client_properties;
  } admin_client;

  struct {
    kwp_limits_t limits;
    /* Ours: with autoCommit=true, how often the offsets of records written
     * to the socket are committed (and always when the socket closes). */
    int64_t auto_commit_interval_ms;
    /* Ours: how long a socket over its send bound or its rate keeps what
     * its consumer prefetched before its partitions are paused. */
    int64_t pause_after_ms;
    kwp_props_t kafka_client_properties;
  } consumer;

  struct {
    int sessions_enabled;
    int exactly_once_enabled;
    kwp_limits_t limits;
    int64_t delivery_timeout_ms;
    char *compression_type;
    /* Ours: per-socket bounds on records awaiting Kafka's ack; reading
     * pauses when either is reached. */
    size_t max_inflight_messages;
    size_t max_inflight_bytes;
    /* Ours: exactly-once sockets commit a transaction every this many
     * records or this often, whichever comes first. */
    size_t transaction_max_messages;
    int64_t transaction_interval_ms;
    kwp_props_t kafka_client_properties;
  } producer;

  struct {
    char *topic_name;
    int64_t topic_replication_factor;
    int64_t topic_retention_ms;
    int64_t topic_init_timeout_ms;
    int64_t topic_init_retries;
    int64_t topic_init_retry_interval_ms;
    /* Ours, session handler only: liveness and admission bounds. */
    int64_t heartbeat_interval_ms;
    int64_t node_ttl_ms;
    int64_t admission_timeout_ms;
  } session_handler, dynamic_config_handler;
  int dynamic_config_handler_enabled;

  struct {
    int64_t max_stack_size;
    int auto_commit_enabled;
    int64_t auto_commit_interval_ms;
    int64_t auto_commit_max_age_ms;
  } commit_handler;

  /* Logging (environment only, as in the reference system). */
  struct {
    int json;        /* WS_PROXY_USE_JSON_LOG_FORMAT */
    int level;       /* WS_PROXY_APP_LOG_LEVEL, a kwp_log_level */
    int kafka_level; /* WS_PROXY_KAFKA_CLIENTS_LOG_LEVEL */
  } log;

  int dev_mode; /* --dev: in-process mock cluster; set by main */
} kwp_config_t;

/**
 * Load the configuration: built-in defaults, then @p path (NULL: none), with
 * `${?ENV}` substitutions, then validation. Environment variables reach keys
 * through the `${?WSPROXY_...}` lines of the built-in defaults, exactly as in
 * the reference system's application.conf, so a user file can re-point them.
 * @p dev_mode relaxes the bootstrap-hosts requirement.
 * @locality main thread, before workers start.
 * @returns a config the caller frees with kwp_config_free(), or NULL with a
 * message in @p errbuf naming the file, line, key and what was expected.
 */
kwp_config_t *kwp_config_load(const char *path, int dev_mode, char *errbuf,
                              size_t errlen);

/**
 * Same as kwp_config_load() but from a string (for tests); @p name is used
 * in error messages in place of a file name.
 */
kwp_config_t *kwp_config_load_string(const char *text, const char *name,
                                     int dev_mode, char *errbuf, size_t errlen);

/** Write the effective configuration as HOCON (secrets masked). */
void kwp_config_print(const kwp_config_t *cfg, FILE *out);

/** Free a config from kwp_config_load(); NULL is fine. */
void kwp_config_free(kwp_config_t *cfg);

/**
 * Look up a properties entry by key; NULL when absent.
 * @locality any thread (the config is read-only after load).
 */
const char *kwp_props_get(const kwp_props_t *props, const char *key);

/**
 * The `client-specific-limits` entry of @p id (a group-id or producer-id);
 * NULL when there is none. @locality any thread
 */
const kwp_client_limit_t *kwp_limits_find(const kwp_limits_t *l,
                                          const char *id);

#endif
