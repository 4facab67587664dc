package local_test

import (
	"testing"
	"time"

	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestSecuredRunPasses runs the whole local topology with both clusters
// requiring mutual TLS and SCRAM-SHA-512: producers, the mirror (through
// the WAN link), consumers, topic administration, trimming-free read-back.
// The run passes and the destination, read back over TLS and SASL with
// another client, holds exactly what the summary says.
func TestSecuredRunPasses(t *testing.T) {
	t.Parallel()
	pki := kafkatest.NewPKI(t, "kmt-local")
	cert, key := pki.Issue(t, "kmt")
	clientTLS, err := kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: cert, KeyFile: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	const user, pass = "kmt", "local-Pa55"
	sc := workload(t, "workload: {rate: 300, duration: 3s, loss_grace: 5s}\n")
	res, tg := run(t, sc, nil,
		local.ClusterOptions(embedded.TLS(pki.ServerTLS(t, true)), embedded.SASLUser(kafkaconf.ScramSHA512, user, pass)),
		local.ConnHook(func(c kafkaconf.Conn) kafkaconf.Conn {
			c.TLS = clientTLS
			c.SASL = kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA512, User: user, Password: pass}
			return c
		}))
	s := res.Summary
	if !passOrStarved(res) || s.Received == 0 || s.Received != s.Produced || s.Lost != 0 {
		t.Fatalf("secured run: verdict %s, summary %+v", res.Verdict, s)
	}
	tr := kafkatest.ReadTopic(t, tg.DestinationAddrs(), "kmt-0", time.Second, kafkatest.Secured(clientTLS, kafkaconf.ScramSHA512, user, pass)...)
	unique, dups, _, missing := tr.Counts()
	// Duplicates only as the destination holds them (the at-least-once
	// mirror replays after a rebalance on a loaded machine).
	if uint64(unique) != s.Received || uint64(dups) != s.Duplicated || len(missing) != 0 || len(tr.Ends) != 6 {
		t.Errorf("destination read back: %d unique, %d duplicates, missing %v, %d end markers; summary %+v", unique, dups, missing, len(tr.Ends), s)
	}
}
