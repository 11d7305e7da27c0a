/* Error texts and the single mapping from error codes to HTTP statuses and
 * WebSocket close codes. Pure functions, any thread. */
#include "core/base/error.h"

#include <uv.h>

const char *kwp_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define KWP_ERR_STR_(name, text)                                               \
  case KWP_E##name:                                                            \
    return text;
    KWP_ERRNO_MAP(KWP_ERR_STR_)
#undef KWP_ERR_STR_
  default:
    return err > KWP_ERR_BASE ? uv_strerror(err) : "unknown error";
  }
}

int kwp_err_http_status(int err) {
  switch (err) {
  case KWP_EBADREQ:
  case KWP_EPROTO:
  case KWP_EUTF8:
  case KWP_EJSON:
  case KWP_EBADMSG:
  case KWP_EBADKEY:
  case KWP_EBADVALUE:
  case KWP_EBADHEADERS:
  case KWP_EFRAMETYPE:
  case KWP_EBADCOMMIT:
    return 400;
  case KWP_EUNAUTHORIZED:
    return 401;
  case KWP_EFORBIDDEN:
    return 403;
  case KWP_ENOTFOUND:
    return 404;
  case KWP_EMETHOD:
    return 405;
  case KWP_EREQTIMEOUT:
    return 408;
  case KWP_EBODYTOOBIG:
  case KWP_ETOOBIG:
    return 413;
  case KWP_EUPGRADE:
    return 426;
  case KWP_EHDRTOOBIG:
    return 431;
  case KWP_ENOTIMPL:
    return 501;
  case KWP_EOVERLOAD:
  case KWP_EUNAVAILABLE:
  case KWP_EKAFKA:
  case KWP_ESHUTDOWN:
    return 503;
  default:
    return 500;
  }
}

unsigned kwp_err_close_code(int err) {
  switch (err) {
  case 0:
    return 1000;
  case KWP_ESHUTDOWN:
  case KWP_EIDLE:
    return 1001;
  case KWP_EPROTO:
    return 1002;
  case KWP_EUTF8:
    return 1007;
  case KWP_EPOLICY:
  case KWP_EUNAUTHORIZED:
  case KWP_EFORBIDDEN:
    return 1008;
  case KWP_ETOOBIG:
    return 1009;
  case KWP_EUNAVAILABLE:
  case KWP_EKAFKA:
    return 1013;
  default:
    return 1011;
  }
}

const char *kwp_err_result_code(int err) {
  switch (err) {
  case KWP_EJSON:
    return "invalid_json";
  case KWP_EBADMSG:
    return "invalid_message";
  case KWP_EBADKEY:
    return "invalid_key";
  case KWP_EBADVALUE:
    return "invalid_value";
  case KWP_EBADHEADERS:
    return "invalid_headers";
  case KWP_EFRAMETYPE:
    return "unsupported_frame";
  case KWP_EBADCOMMIT:
    return "invalid_commit";
  case KWP_EUNKNOWNID:
    return "unknown_message_id";
  case KWP_EDELIVERYTIMEOUT:
    return "delivery_timeout";
  case KWP_EMSGSIZE:
    return "message_too_large";
  case KWP_ENOTOPIC:
    return "topic_not_found";
  case KWP_ENOTDELIVERED:
    return "not_delivered";
  case KWP_EBUSY:
    return "busy";
  case KWP_ETXN:
    return "transaction_aborted";
  default:
    return "kafka_error";
  }
}
