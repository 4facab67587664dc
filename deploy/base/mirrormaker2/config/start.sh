#!/bin/sh
# Starts one MirrorMaker 2 worker: the static configuration plus this pod's
# source bootstrap addresses and REST address (workers forward task
# configurations to the leader through the internal REST server).
set -eu
conf=/run/mm2/mm2.properties
cat /etc/mm2/mm2.properties > "$conf"
printf 'source.bootstrap.servers=%s\nrest.advertised.host.name=%s\n' "$SOURCE_BOOTSTRAP" "$POD_IP" >> "$conf"
exec /opt/kafka/bin/connect-mirror-maker.sh "$conf"
