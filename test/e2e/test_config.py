"""Configuration loading: --print-config, --config FILE, errors, ${?ENV}
overrides, JSON logs (README "Configuration")."""

import json
import os
import re

import pytest

from conftest import free_port, http_get, run_binary


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def port_in_hocon(text):
    """The server port in printed HOCON, whether nested or dotted."""
    m = re.search(r'(?m)^\s*(?:kafka\.ws\.proxy\.server\.)?port\s*[=:]\s*"?(\d+)"?\s*$',
                  text)
    return int(m.group(1)) if m else None


def test_print_config_shows_env_override():
    rc, out, err = run_binary(["--print-config"], env={
        "WSPROXY_PORT": "12345", "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "h1:9092,h2:9093"})
    assert rc == 0, err
    assert "kafka" in out and "ws" in out and "proxy" in out
    assert port_in_hocon(out) == 12345, out[:2000]
    assert "h1:9092,h2:9093" in out
    assert re.search(r"bootstrap-hosts\s*[=:]", out), out[:2000]


def test_print_config_defaults():
    rc, out, err = run_binary(["--print-config"], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc == 0, err
    assert port_in_hocon(out) == 8078
    assert re.search(r'bind-interface\s*[=:]\s*"?0\.0\.0\.0"?', out), out[:2000]


def test_print_config_masks_secrets():
    rc, out, err = run_binary(["--print-config"], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092",
        "WSPROXY_BASIC_AUTH_PASSWORD": "s3cr3t-pw-XYZ",
        "WSPROXY_SSL_KEYSTORE_PASS": "ks-pass-QQQ",
        "WSPROXY_SCHEMA_REGISTRY_URL": "https://sr-user:sr-pw-RRR@sr:8081/x",
        "WSPROXY_SCHEMA_BASIC_AUTH_USER_INFO": "u:sr-info-TTT"})
    assert rc == 0, err
    assert "s3cr3t-pw-XYZ" not in out
    assert "ks-pass-QQQ" not in out
    # the URL's user info (regression: printed as given)
    assert "sr-pw-RRR" not in out and "sr-user" not in out
    assert "https://********@sr:8081/x" in out
    assert "sr-info-TTT" not in out


def test_print_config_output_is_reloadable(tmp_path):
    """What --print-config prints is a valid config file with the same
    effective values."""
    rc, out, err = run_binary(["--print-config"], env={
        "WSPROXY_PORT": "23456", "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc == 0, err
    f = write(tmp_path, "printed.conf", out)
    rc2, out2, err2 = run_binary(["--config", f, "--print-config"])
    assert rc2 == 0, err2
    assert port_in_hocon(out2) == 23456
    assert "k:9092" in out2


def test_config_file_changes_port(proxy, kafka, tmp_path):
    port = free_port()
    conf = """
kafka.ws.proxy {
  server {
    server-id = "test-node"
    bind-interface = "127.0.0.1"
    port = %d
  }
  kafka-client {
    bootstrap-hosts = "%s"
  }
}
""" % (port, kafka.bootstrap)
    p = proxy(config=conf, env={"WSPROXY_PORT": None,
                                "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": None},
              bootstrap=None, wait=False)
    p.port = port
    p.wait_healthy()
    st, _, body = http_get(port, "/healthcheck")
    assert st == 200


def test_config_file_dotted_keys(tmp_path):
    f = write(tmp_path, "dotted.conf",
              'kafka.ws.proxy.server.port = 34567\n'
              'kafka.ws.proxy.kafka-client.bootstrap-hosts = "a:1"\n')
    rc, out, err = run_binary(["--config", f, "--print-config"])
    assert rc == 0, err
    assert port_in_hocon(out) == 34567


def _assert_error_names(err, *needles, line=None, path=None):
    low = err.lower()
    for n in needles:
        assert n.lower() in low, "%r not in error: %s" % (n, err)
    if line is not None:
        assert re.search(r"(line\s*%d\b|:%d\b)" % (line, line), err), \
            "line %d not named in: %s" % (line, err)
    if path is not None:
        assert os.path.basename(path) in err, "file not named in: %s" % err


def test_bad_file_syntax_error(tmp_path):
    f = write(tmp_path, "syntax.conf",
              "# comment\n"
              "kafka.ws.proxy {\n"
              "  server {\n"
              "    port = 8080\n"
              "    bind-interface = = \"x\"\n"
              "  }\n"
              "}\n")
    rc, out, err = run_binary(["--config", f], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc != 0
    _assert_error_names(err, line=5, path=f)


def test_bad_file_unclosed_brace(tmp_path):
    f = write(tmp_path, "unclosed.conf",
              "kafka.ws.proxy {\n  server {\n    port = 8080\n")
    rc, out, err = run_binary(["--config", f], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc != 0
    _assert_error_names(err, path=f)


def test_bad_port_value(tmp_path):
    f = write(tmp_path, "port.conf",
              "\n\n"
              "kafka.ws.proxy.kafka-client.bootstrap-hosts = \"k:9092\"\n"
              "kafka.ws.proxy.server {\n"
              "  port = \"abc\"\n"
              "}\n")
    rc, out, err = run_binary(["--config", f])
    assert rc != 0
    _assert_error_names(err, "port", line=5, path=f)


def test_port_out_of_range(tmp_path):
    f = write(tmp_path, "range.conf",
              'kafka.ws.proxy.kafka-client.bootstrap-hosts = "k:9092"\n'
              "kafka.ws.proxy.server.port = 70000\n")
    rc, out, err = run_binary(["--config", f])
    assert rc != 0
    _assert_error_names(err, "port", line=2, path=f)


def test_unknown_duration_unit(tmp_path):
    f = write(tmp_path, "dur.conf",
              'kafka.ws.proxy.kafka-client.bootstrap-hosts = "k:9092"\n'
              "# a comment line\n"
              "kafka.ws.proxy.server.request-timeout = 5 fortnights\n")
    rc, out, err = run_binary(["--config", f])
    assert rc != 0
    _assert_error_names(err, "request-timeout", line=3, path=f)


def test_bad_env_value():
    rc, out, err = run_binary([], env={"WSPROXY_PORT": "abc",
                                       "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc != 0
    _assert_error_names(err, "port")


def test_bad_env_duration():
    rc, out, err = run_binary([], env={"WSPROXY_WS_IDLE_TIMEOUT": "3 lightyears",
                                       "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc != 0
    _assert_error_names(err, "idle-timeout")


def test_missing_bootstrap_hosts():
    rc, out, err = run_binary([], env={"WSPROXY_KAFKA_BOOTSTRAP_HOSTS": None,
                                       "WSPROXY_PORT": str(free_port())})
    assert rc != 0
    _assert_error_names(err, "bootstrap-hosts")


def test_nonexistent_config_path(tmp_path):
    missing = str(tmp_path / "does-not-exist.conf")
    rc, out, err = run_binary(["--config", missing], env={
        "WSPROXY_KAFKA_BOOTSTRAP_HOSTS": "k:9092"})
    assert rc != 0
    assert "does-not-exist.conf" in err, err


def test_unknown_argument():
    rc, out, err = run_binary(["--no-such-flag"])
    assert rc != 0
    assert "--no-such-flag" in err


def test_env_override_beats_file(tmp_path):
    conf = ('kafka.ws.proxy.kafka-client.bootstrap-hosts = "k:9092"\n'
            "kafka.ws.proxy.server.port = 1111\n"
            "kafka.ws.proxy.server.port = ${?KWP_TEST_PORT}\n")
    f = write(tmp_path, "env.conf", conf)
    rc, out, err = run_binary(["--config", f, "--print-config"],
                              env={"KWP_TEST_PORT": "2222"})
    assert rc == 0, err
    assert port_in_hocon(out) == 2222
    # without the variable, the file's value stays
    rc, out, err = run_binary(["--config", f, "--print-config"],
                              env={"KWP_TEST_PORT": None})
    assert rc == 0, err
    assert port_in_hocon(out) == 1111


def test_builtin_env_lines_apply_under_a_file(tmp_path):
    """A user file that does not mention the port: WSPROXY_PORT still
    applies through the built-in ${?WSPROXY_PORT} line."""
    f = write(tmp_path, "noport.conf",
              'kafka.ws.proxy.kafka-client.bootstrap-hosts = "k:9092"\n')
    rc, out, err = run_binary(["--config", f, "--print-config"],
                              env={"WSPROXY_PORT": "4321"})
    assert rc == 0, err
    assert port_in_hocon(out) == 4321


def test_env_override_starts_proxy_on_env_port(proxy, kafka, tmp_path):
    port = free_port()
    conf = ("kafka.ws.proxy.server.port = 1\n"
            "kafka.ws.proxy.server.port = ${?KWP_TEST_PORT}\n"
            'kafka.ws.proxy.server.bind-interface = "127.0.0.1"\n')
    p = proxy(config=conf, env={"KWP_TEST_PORT": str(port),
                                "WSPROXY_PORT": None}, wait=False)
    p.port = port
    p.wait_healthy()


def test_json_logs(proxy):
    p = proxy(env={"WS_PROXY_USE_JSON_LOG_FORMAT": "true",
                   "WS_PROXY_APP_LOG_LEVEL": "DEBUG"})
    # some traffic that logs: errors, a websocket
    p.get("/nope")
    p.get("/healthcheck", method="POST")
    rc, took = p.stop()
    assert rc == 0, p.stderr_tail()
    lines = [ln for ln in p.stderr().splitlines() if ln.strip()]
    assert len(lines) >= 2, "too few log lines: %r" % lines
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            pytest.fail("log line is not JSON: %r" % ln)
        assert isinstance(obj, dict), ln
        for k in ("time", "level", "subsys", "message"):
            assert k in obj, "%r lacks %r" % (ln, k)
        assert isinstance(obj["message"], str)


def test_text_logs_by_default(proxy):
    p = proxy()
    p.stop()
    lines = [ln for ln in p.stderr().splitlines() if ln.strip()]
    assert lines, "no log lines at all at the default level"
    assert not all(ln.lstrip().startswith("{") for ln in lines)


def test_version_flag():
    rc, out, err = run_binary(["--version"])
    assert rc == 0
    assert out.startswith("kafka-ws-proxy ")


@pytest.mark.parametrize("arg", [["--config"], ["--config="]])
def test_config_without_a_file_says_so(arg):
    """It said: unknown argument '--config'."""
    rc, out, err = run_binary(arg)
    assert rc == 2
    assert "--config needs a file name" in err, err
