package kafkaproc_test

import (
	"testing"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

func TestSmoke(t *testing.T) {
	c := kafkatest.RealKafka(t, kafkaproc.Config{})
	t.Log(c.Running())
}
