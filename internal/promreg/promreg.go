// Package promreg registers Prometheus collectors so that building a
// component's metrics twice on one registry (several producers or consumers
// in one process) shares them instead of failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector already registered
// under the same description. Any other registration error is a programming
// error (conflicting definitions) and panics, naming component.
func Register[C prometheus.Collector](component string, reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(component + " metrics: " + err.Error())
}
