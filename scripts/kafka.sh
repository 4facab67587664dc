#!/usr/bin/env bash
# Assembles the Apache Kafka distribution kmt runs (brokers, MirrorMaker 2,
# perf tools) from Maven Central into a cache folder outside the repository,
# in the layout of the official tarball (DIR/libs/*.jar), and prints DIR as
# its last line. Idempotent: a complete DIR is reused.
#
#   KMT_CACHE   cache root (default: $XDG_CACHE_HOME/kmt or ~/.cache/kmt)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pom="$here/kafka/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache=${KMT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmt}
dir="$cache/kafka-$version"
stamp="$dir/.complete"

if ! command -v java >/dev/null 2>&1; then
	echo "make kafka: no java on PATH; install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)" >&2
	exit 2
fi
jv=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
if [ "${jv%%.*}" -lt 17 ] 2>/dev/null; then
	echo "make kafka: java $jv found, Kafka $version needs Java 17 or newer" >&2
	exit 2
fi

# The stamp records the pom it was built from: a changed pom rebuilds.
want=$(sha256sum "$pom" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "$dir"
	exit 0
fi
if ! command -v mvn >/dev/null 2>&1; then
	echo "make kafka: no mvn on PATH; install Maven (Debian: apt-get install maven)" >&2
	exit 2
fi
echo "make kafka: assembling Apache Kafka $version from Maven Central into $dir" >&2
tmp="$dir.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
# --strict-checksums: a jar whose checksum does not match is an error.
mvn -q -B --strict-checksums -f "$pom" dependency:copy-dependencies \
	-DoutputDirectory="$tmp/libs" -DincludeScope=runtime >&2
[ -f "$tmp/libs/kafka_2.13-$version.jar" ] || { echo "make kafka: kafka_2.13-$version.jar missing after the download" >&2; exit 1; }
echo "$version" >"$tmp/VERSION"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$want" >"$stamp"
echo "$dir"
