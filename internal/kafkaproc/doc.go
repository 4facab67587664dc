// Package kafkaproc runs real Apache Kafka brokers and MirrorMaker 2 as
// child JVM processes on 127.0.0.1, without Docker, from a distribution
// folder in the layout of the official tarball (DIR/libs/*.jar; `make kafka`
// assembles one from Maven Central).
//
// A Cluster is a KRaft cluster: by default one dedicated controller node
// (process.roles=controller) plus three brokers (process.roles=broker), so
// killing, stopping or restarting a broker never touches the metadata
// quorum. Combined mode (Config.Combined) runs every node as
// broker+controller instead, which is what a single-node test Kafka wants
// (one JVM). Every node has its own directory under the run directory:
//
//	RUN/NAME/broker-0/server.properties  the node's configuration
//	RUN/NAME/broker-0/data/              its log dir (meta.properties, partitions)
//	RUN/NAME/broker-0/server.log         log4j2 output, stdout and stderr of the JVM
//	RUN/log4j2.properties                the logging configuration every JVM uses
//
// Nodes are formatted with kafka.tools.StorageTool and started the way
// bin/kafka-server-start.sh does (java -cp 'DIR/libs/*' kafka.Kafka
// server.properties), with JVM flags for a small machine (small heaps,
// SerialGC). A broker is ready when it answers a Kafka Metadata request and
// the cluster's metadata lists every broker expected to be up.
//
// Brokers can carry a second listener, REPLICATOR, for the cross-region
// replicator: its advertised address is chosen by the caller per broker
// (typically a Proxy through kmt's WAN link, see internal/wan), so that
// degrading the link degrades the replicator's traffic and nobody else's.
//
// MirrorMaker 2 runs in dedicated mode (org.apache.kafka.connect.mirror.MirrorMaker)
// from the same jars, configured from deploy/base/mirrormaker2/config/mm2.properties
// (the file the Kubernetes deployment ships) with the bootstrap addresses,
// replication factors and REST listener overridden. Several MirrorMaker
// values started with the same clusters are workers of one MirrorMaker 2
// cluster.
//
// Children never outlive their parent: each JVM is the leader of its own
// process group; Close, Stop and Kill signal that group (SIGTERM then
// SIGKILL); and each JVM is forked from an OS thread that lives as long as
// the Cluster or MirrorMaker it belongs to, with the parent-death signal set
// to SIGKILL, so a parent killed with SIGKILL takes its JVMs with it.
package kafkaproc
