"""server.basic-auth (docs/api.md "Authentication"): every route but an
unknown one needs the configured user; /healthcheck and /ready only with
server.secure-health-check-endpoint (default on). 401 JSON with the realm's
challenge; WebSocket endpoints check in the upgrade's identity step."""

import base64
import json

import pytest
import websocket

from conftest import assert_json_error, run_binary, wait_until
from test_consume import new_topic
from wsraw import WsRaw

USER, PASSWORD = "j\u00fcrgen", "p\u00e4ss:w0rd:with colons"
MISSING = ("The resource requires authentication, which was not supplied "
           "with the request")
INVALID = "The supplied authentication is invalid"


def env(**extra):
    e = {"WSPROXY_BASIC_AUTH_ENABLED": "true",
         "WSPROXY_BASIC_AUTH_REALM": "kwp \"test\" realm",
         "WSPROXY_BASIC_AUTH_USERNAME": USER,
         "WSPROXY_BASIC_AUTH_PASSWORD": PASSWORD,
         "WSPROXY_ECHO_ENDPOINT_ENABLED": "true"}
    e.update(extra)
    return e


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode()


GOOD = basic(USER, PASSWORD)


@pytest.fixture(scope="module")
def srv(proxy_mod, kafka):
    p = proxy_mod(env=env(), wait=False)
    assert wait_until(lambda: ok(p, "/ready"), 30), p.stderr()
    return p


def ok(p, path):
    try:
        return get(p, path, GOOD)[0] == 200
    except OSError:
        return False


def get(srv, path, auth=None):
    return srv.get(path, headers={"Authorization": auth} if auth else None)


def assert_401(st, hdrs, body, message):
    assert_json_error(st, hdrs, body, 401, message)
    assert hdrs["www-authenticate"] == \
        'Basic realm="kwp \\"test\\" realm", charset="UTF-8"', hdrs


@pytest.mark.parametrize("path", ["/kafka/cluster/info",
                                  "/schemas/avro/producer/record",
                                  "/healthcheck", "/ready"])
def test_http_routes_need_the_user(srv, path):
    assert_401(*get(srv, path), MISSING)
    for bad in [basic(USER, "wrong"), basic("other", PASSWORD),
                basic(USER, PASSWORD + "x"), basic(USER, PASSWORD[:-1]),
                "Basic !!!notbase64", "Basic " + base64.b64encode(
                    b"no-colon").decode(), "Bearer abc",
                GOOD.replace("Basic", "Basically")]:
        assert_401(*get(srv, path, bad), INVALID)
    st, _, body = get(srv, path, GOOD)
    assert st == 200, body
    # the scheme is case-insensitive (RFC 7617)
    st, _, _ = get(srv, path, GOOD.replace("Basic", "bAsIc"))
    assert st == 200


def test_unknown_path_is_404_without_credentials(srv):
    st, _, _ = get(srv, "/nothing-here")
    assert st == 404


def test_two_authorization_headers_are_refused(srv):
    c = WsRaw(srv.port, timeout=10)
    with c:
        c.sock.sendall(("GET /kafka/cluster/info HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: %s\r\nAuthorization: %s\r\n\r\n"
                        % (GOOD, GOOD)).encode("utf-8"))
        r = c.read_response(body=True)
    assert r.status == 401, r


@pytest.mark.parametrize("path", ["/echo", "/socket/in?clientId=c&topic={t}",
                                  "/socket/out?clientId=c&topic={t}"])
def test_websocket_endpoints_need_the_user(srv, kafka, path):
    t = new_topic(kafka, 1)
    url = srv.ws_url(path.format(t=t))
    for headers, message in [([], MISSING),
                             (["Authorization: " + basic(USER, "x")],
                              INVALID)]:
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            websocket.create_connection(url, header=headers, timeout=10)
        e = ei.value
        assert e.status_code == 401
        assert json.loads(e.resp_body) == {"message": message}
        assert "Basic realm=" in e.resp_headers["www-authenticate"]
    ws = websocket.create_connection(url, header=["Authorization: " + GOOD],
                                     timeout=10)
    if path == "/echo":
        ws.send("hi")
        assert ws.recv() == "hi"
    ws.close()


def test_produce_and_consume_with_credentials(srv, kafka):
    t = new_topic(kafka, 1)
    h = ["Authorization: " + GOOD]
    ws = websocket.create_connection(
        srv.ws_url("/socket/in?clientId=ba&topic=" + t), header=h, timeout=30)
    ws.send(json.dumps({"value": {"value": "secret stuff"}}))
    assert json.loads(ws.recv())["offset"] == 0
    ws.close()
    out = websocket.create_connection(
        srv.ws_url("/socket/out?clientId=ba&topic=" + t), header=h,
        timeout=30)
    assert json.loads(out.recv())["value"]["value"] == "secret stuff"
    out.close()


def test_health_routes_open_when_not_secured(proxy):
    p = proxy(env=env(WSPROXY_SECURE_HEALTHCHECK_ENDPOINT="false"))
    assert get(p, "/healthcheck")[0] == 200
    assert get(p, "/ready")[0] == 200
    assert_401(*get(p, "/kafka/cluster/info"), MISSING)


@pytest.mark.parametrize("missing", ["USERNAME", "PASSWORD", "REALM"])
def test_every_key_is_required_when_enabled(missing):
    e = env(WSPROXY_KAFKA_BOOTSTRAP_HOSTS="k:9092")
    del e["WSPROXY_BASIC_AUTH_" + missing]
    rc, out, err = run_binary([], env=e)
    assert rc != 0
    assert ("server.basic-auth.%s is required" % missing.lower()) in err, err
    assert PASSWORD not in err


def test_the_password_is_never_logged(srv):
    get(srv, "/kafka/cluster/info", basic(USER, "guess-XYZ"))
    get(srv, "/kafka/cluster/info", GOOD)
    log = srv.stderr()
    assert PASSWORD not in log and "guess-XYZ" not in log
    assert base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode() \
        not in log


def test_openid_connect_refuses_to_start():
    rc, _, err = run_binary([], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092",
        "WSPROXY_OPENID_ENABLED": "true",
        "WSPROXY_OPENID_WELLKNOWN": "https://idp/.well-known",
        "WSPROXY_OPENID_AUDIENCE": "a"})
    assert rc != 0
    assert "refusing to start unprotected" in err, err
