package kafkaconf

import (
	"errors"
	"io"
	"log/slog"
	"syscall"

	"github.com/IBM/sarama"
)

// RebalanceChurn reports whether err is what a consumer group member
// normally meets while the group rebalances (a member joins, leaves, is
// killed or the coordinator moves): its generation was fenced (unknown
// member, illegal generation, rebalance in progress), the coordinator moved
// (not coordinator, coordinator loading or unavailable), or a broker closed
// the connection mid-request (EOF, connection reset). The client rejoins
// and the at-least-once commits make it harmless; nothing needs a person.
func RebalanceChurn(err error) bool {
	if err == nil {
		return false
	}
	for _, k := range []sarama.KError{
		sarama.ErrUnknownMemberId, sarama.ErrIllegalGeneration, sarama.ErrRebalanceInProgress,
		sarama.ErrNotCoordinatorForConsumer, sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrFencedInstancedId,
	} {
		if errors.Is(err, k) {
			return true
		}
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ChurnLevel is the level to log a consumer group error at: info for
// RebalanceChurn (expected, self-healing), warn for anything else (it may
// need a person).
func ChurnLevel(err error) slog.Level {
	if RebalanceChurn(err) {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
