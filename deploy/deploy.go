// Package deploy holds kmt's Kubernetes manifests. Its Go side exposes the
// files that local runs reuse, so that a local run and a deployment share
// one source of truth.
package deploy

import _ "embed"

//go:embed base/mirrormaker2/config/mm2.properties
var mm2Properties string

// MirrorMaker2Properties returns deploy/base/mirrormaker2/config/mm2.properties,
// the MirrorMaker 2 configuration the Kubernetes deployment ships (its
// start script appends source.bootstrap.servers and
// rest.advertised.host.name).
func MirrorMaker2Properties() string { return mm2Properties }
