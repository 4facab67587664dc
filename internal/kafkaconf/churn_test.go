package kafkaconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/IBM/sarama"
)

// TestChurnLevel checks which consumer group errors are logged at info
// (expected during rebalances, as sarama hands them over: wrapped in a
// ConsumerError or an error chain) and which stay at warn.
func TestChurnLevel(t *testing.T) {
	for _, c := range []struct {
		err  error
		want slog.Level
	}{
		{&sarama.ConsumerError{Topic: "kmt-0", Partition: 1, Err: sarama.ErrUnknownMemberId}, slog.LevelInfo},
		{fmt.Errorf("commit: %w", sarama.ErrIllegalGeneration), slog.LevelInfo},
		{sarama.ErrRebalanceInProgress, slog.LevelInfo},
		{sarama.ErrNotCoordinatorForConsumer, slog.LevelInfo},
		{fmt.Errorf("read response: %w", io.EOF), slog.LevelInfo},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, slog.LevelInfo},
		{sarama.ErrTopicAuthorizationFailed, slog.LevelWarn},
		{sarama.ErrSASLAuthenticationFailed, slog.LevelWarn},
		{&sarama.ConsumerError{Topic: "kmt-0", Err: sarama.ErrOffsetOutOfRange}, slog.LevelWarn},
		{errors.New("dial tcp 127.0.0.1:1: connection refused"), slog.LevelWarn},
		{context.DeadlineExceeded, slog.LevelWarn},
	} {
		if got := ChurnLevel(c.err); got != c.want {
			t.Errorf("%v: level %v, want %v", c.err, got, c.want)
		}
	}
	if RebalanceChurn(nil) {
		t.Error("nil is churn")
	}
}
