package kafkaproc_test

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestStartFailureQuotesTheLog starts a broker Kafka refuses to run: the
// error quotes the end of its log and names the full log, which is kept.
func TestStartFailureQuotesTheLog(t *testing.T) {
	home := kafkatest.KafkaHome(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := kafkaproc.StartCluster(ctx, kafkaproc.Config{Home: home, Dir: t.TempDir(), Name: "broken", Brokers: 1, Combined: true,
		BrokerProperties: map[string]string{"num.network.threads": "zero"}})
	if err == nil {
		c.Close()
		t.Fatal("a broker with num.network.threads=zero started")
	}
	msg := err.Error()
	if !strings.Contains(msg, "zero") || !strings.Contains(msg, "last lines of ") {
		t.Fatalf("error does not quote the log: %v", err)
	}
	log := regexp.MustCompile(`last lines of (\S+server\.log)`).FindStringSubmatch(msg)
	if log == nil {
		t.Fatalf("error names no log file: %v", err)
	}
	if _, err := os.Stat(log[1]); err != nil {
		t.Fatalf("the log the error names is gone: %v", err)
	}
}

// TestRestartOnATakenPortSaysSo restarts a killed broker whose port another
// process took meanwhile: the error says which port and which listener.
func TestRestartOnATakenPortSaysSo(t *testing.T) {
	c := kafkatest.RealKafka(t, kafkaproc.Config{Name: "ports", Brokers: 1, Combined: true})
	addr := c.Bootstrap()[0]
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = c.Restart(ctx, 0)
	ln.Close()
	if err == nil || !strings.Contains(err.Error(), addr+" (PLAINTEXT listener of combined node 0) is taken") {
		t.Fatalf("Restart on a taken port: %v", err)
	}
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatalf("Restart once the port is free: %v", err)
	}
}
