#!/bin/sh
# Starts one KRaft node of kmt's Kafka deployment; $1 is "controller" or
# "broker". The node id comes from the pod ordinal: brokers are 0..N-1 (the
# ids scenarios use), controllers 1000+. The quorum is static: one voter per
# controller pod, CONTROLLER_REPLICAS of them.
set -eu
role="$1"
ordinal="${POD_NAME##*-}"
conf=/run/kafka/server.properties

voters=""
i=0
while [ "$i" -lt "${CONTROLLER_REPLICAS:-3}" ]; do
  voters="${voters:+$voters,}$((1000 + i))@kafka-controller-$i.kafka-controller.$POD_NAMESPACE.svc:9093"
  i=$((i + 1))
done

cat "/etc/kafka-kmt/$role.properties" > "$conf"
case "$role" in
controller)
  node_id=$((1000 + ordinal))
  ;;
broker)
  node_id="$ordinal"
  # Written by the advertise init container (kmt k8s advertise).
  cat /run/kafka/advertised.properties >> "$conf"
  ;;
*)
  echo "start.sh: role must be controller or broker, got $role" >&2
  exit 2
  ;;
esac
printf 'node.id=%s\ncontroller.quorum.voters=%s\n' "$node_id" "$voters" >> "$conf"

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$KAFKA_CLUSTER_ID" --config "$conf"
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
