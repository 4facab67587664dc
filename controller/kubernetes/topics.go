package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// TopicsEnv is the environment variable of the kmt fleet's containers that
// lists the workload's topics (the --topics flag).
const TopicsEnv = "KMT_TOPICS"

// AddPartitions grows topic to total partitions on the source cluster, then
// on the destination (where the replicator may already have done it; a
// cluster that already has total or more is left alone), through the Kafka
// admin API.
func (t *Target) AddPartitions(ctx context.Context, topic string, total int) error {
	if total < 1 {
		return fmt.Errorf("add partitions to %s: total must be at least 1, got %d", topic, total)
	}
	for _, c := range []struct {
		name string
		conn kafkaconf.Conn
	}{{"source", t.cfg.SourceKafka}, {"destination", t.cfg.DestinationKafka}} {
		if err := t.growTopic(ctx, c.name, c.conn, topic, int32(total)); err != nil {
			return fmt.Errorf("add partitions to %s: %w", topic, err)
		}
	}
	return nil
}

func (t *Target) growTopic(ctx context.Context, cluster string, conn kafkaconf.Conn, topic string, total int32) error {
	admin, err := t.admin(ctx, cluster, conn)
	if err != nil {
		return err
	}
	defer admin.Close()
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("%s: describe topic: %w", cluster, err)
	}
	if len(meta) != 1 || !errors.Is(meta[0].Err, sarama.ErrNoError) {
		e := sarama.ErrUnknownTopicOrPartition
		if len(meta) == 1 {
			e = meta[0].Err
		}
		return fmt.Errorf("%s: describe topic: %w", cluster, e)
	}
	have := int32(len(meta[0].Partitions))
	if have >= total {
		t.log.Info("topic already has the partitions", "cluster", cluster, "topic", topic, "partitions", have, "wanted", total)
		return nil
	}
	if err := admin.CreatePartitions(topic, total, nil, false); err != nil {
		return fmt.Errorf("%s: grow from %d to %d partitions: %w", cluster, have, total, err)
	}
	t.log.Info("partitions added", "cluster", cluster, "topic", topic, "from", have, "to", total)
	return nil
}

// CreateTopic creates topic on the source cluster with partitions
// partitions and ReplicationFactor replicas (an existing topic is fine), then
// adds it to the workload: the producer and consumer Deployments get it
// appended to their KMT_TOPICS variable, and CreateTopic waits for both
// rollouts. The replicator picks the topic up by its topic pattern.
func (t *Target) CreateTopic(ctx context.Context, topic string, partitions int) error {
	if partitions < 1 {
		return fmt.Errorf("create topic %s: partitions must be at least 1, got %d", topic, partitions)
	}
	admin, err := t.admin(ctx, "source", t.cfg.SourceKafka)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: t.cfg.ReplicationFactor}, false)
	admin.Close()
	switch {
	case errors.Is(err, sarama.ErrTopicAlreadyExists):
		t.log.Info("topic exists already", "topic", topic)
	case err != nil:
		return fmt.Errorf("create topic %s on source: %w", topic, err)
	default:
		t.log.Info("topic created", "cluster", "source", "topic", topic, "partitions", partitions)
	}
	for _, d := range []struct {
		c        Client
		ns, name string
	}{{t.src, t.cfg.SourceNamespace, t.cfg.ProducerDeployment}, {t.dst, t.cfg.DestinationNamespace, t.cfg.ConsumerDeployment}} {
		if err := t.addTopicToDeployment(ctx, d.c, d.ns, d.name, topic); err != nil {
			return fmt.Errorf("create topic %s: add it to the workload: %w", topic, err)
		}
	}
	return nil
}

// addTopicToDeployment appends topic to the KMT_TOPICS variable of the
// workload container of deployment ns/name and waits for the rollout.
func (t *Target) addTopicToDeployment(ctx context.Context, c Client, ns, name, topic string) error {
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", ns, name, err)
	}
	var topics string
	found := false
	for _, ct := range dep.Spec.Template.Spec.Containers {
		if ct.Name != t.cfg.WorkloadContainer {
			continue
		}
		for _, e := range ct.Env {
			if e.Name == TopicsEnv && e.ValueFrom == nil {
				topics, found = e.Value, true
			}
		}
	}
	if !found {
		return fmt.Errorf("deployment %s/%s: container %q has no literal %s variable to extend", ns, name, t.cfg.WorkloadContainer, TopicsEnv)
	}
	list := strings.Split(topics, ",")
	if slices.Contains(list, topic) {
		return nil
	}
	value := strings.Join(append(list, topic), ",")
	patch, err := json.Marshal(map[string]any{
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{
				"name": t.cfg.WorkloadContainer,
				"env":  []any{map[string]any{"name": TopicsEnv, "value": value}},
			}},
		}}},
	})
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch deployment %s/%s: %w", ns, name, err)
	}
	t.log.Info("topic added to the workload", "deployment", ns+"/"+name, "topics", value)
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	return t.waitDeployment(ctx, c, ns, name, want)
}

// admin connects an admin client to one cluster.
func (t *Target) admin(ctx context.Context, cluster string, conn kafkaconf.Conn) (sarama.ClusterAdmin, error) {
	if len(conn.Brokers) == 0 {
		return nil, fmt.Errorf("%s: no Kafka bootstrap addresses configured for the kubernetes target (--k8s-%s-bootstrap)", cluster, cluster)
	}
	if conn.ClientID == "" {
		conn.ClientID = "kmt-controller"
	}
	cfg, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cluster, err)
	}
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cluster, err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("%s: admin client: %w", cluster, err)
	}
	return admin, nil
}
