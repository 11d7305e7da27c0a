#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine.
# A no-op (a few checks) when all is present. Used by `make run` and `make test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

DEB_PKGS="build-essential pkg-config libuv1-dev librdkafka-dev libjansson-dev libavro-dev libssl-dev \
libcurl4-openssl-dev node-llhttp clang-format maven default-jre-headless python3-pip haproxy"
# confluent-kafka's schema-registry client needs its extras (httpx, authlib, fastavro).
PY_PKGS="pytest websocket-client websockets confluent-kafka[schemaregistry,avro]"
# --build-only: the build's packages only (make run); --fuzz: those plus clang
# and its libFuzzer runtime (make fuzz).
mode=${1:-}
[ "$mode" = "--fuzz" ] && DEB_PKGS="$DEB_PKGS clang-14 libclang-rt-14-dev"
KAFKA_VERSION=${KAFKA_VERSION:-3.9.2}
KAFKA_LIBS=${KWP_KAFKA_LIBS:-$HOME/.cache/kafka-ws-proxy/kafka-$KAFKA_VERSION/libs}
# The Confluent-compatible schema registry of the tests (test/e2e/registry.py):
# Apicurio Registry's Quarkus app, whose 2.6 line runs on Debian's Java 17
# (3.x needs Java 21) and keeps its schemas in an embedded H2 database.
APICURIO_VERSION=${APICURIO_VERSION:-2.6.13.Final}
APICURIO_HOME=${KWP_APICURIO_HOME:-$HOME/.cache/kafka-ws-proxy/apicurio-registry-$APICURIO_VERSION}

need_deb=""
for p in $DEB_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_deb="$need_deb $p"
done
if [ -n "$need_deb" ]; then
  echo "setup: installing Debian packages:$need_deb"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need_deb >/dev/null
fi

if [ "$mode" = "" ]; then
  if ! python3 -c "import pytest, websocket, websockets, confluent_kafka.schema_registry, fastavro" 2>/dev/null; then
    echo "setup: installing Python test packages: $PY_PKGS"
    python3 -m pip install -q --disable-pip-version-check $PY_PKGS 2>/dev/null ||
      python3 -m pip install -q --disable-pip-version-check --break-system-packages $PY_PKGS
  fi
  if [ ! -f "$KAFKA_LIBS/.complete" ]; then
    echo "setup: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    mkdir -p "$KAFKA_LIBS"
    pom=$(mktemp -d)/pom.xml
    sed "s/@KAFKA_VERSION@/$KAFKA_VERSION/" "$here/kafka/pom.xml.in" > "$pom"
    mvn -B -q -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime
    touch "$KAFKA_LIBS/.complete"
  fi
  if [ ! -f "$APICURIO_HOME/.complete" ]; then
    echo "setup: fetching Apicurio Registry $APICURIO_VERSION from Maven Central into $APICURIO_HOME"
    rm -rf "$APICURIO_HOME" && mkdir -p "$APICURIO_HOME"
    dl=$(mktemp -d)
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" -DoutputDirectory="$dl"
    tar xzf "$dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$APICURIO_HOME"
    rm -rf "$dl"
    touch "$APICURIO_HOME/.complete"
  fi
fi
