// Package controller runs chaos scenarios: it drives a workload on a Target
// (the embedded local topology, real Kafka processes or two Kubernetes
// clusters), applies faults on a timeline, samples the measurements every
// second, and turns them into per-step and overall verdicts.
//
// The pieces are kept apart as in etcd's functional tester: traffic lives in
// the target, faults are small values with Inject/Recover/Describe kept in a
// registry, recording is the once-a-second sampler, and validation is a pure
// function of what was recorded (see Evaluate).
package controller
