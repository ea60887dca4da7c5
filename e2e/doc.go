// Package e2e proves the whole self-healing loop on one machine: demo services in containers
// built FROM scratch, PostgreSQL, Prometheus and Alertmanager as local processes with the
// repository's own rules and configuration, the load generator and the remediator with the
// repository's own playbooks. Each scenario injects a real fault and asserts, from the outside,
// that the loop noticed, healed and recovered, and how long each leg took.
//
// The test runs only when E2E is set (make e2e); it then requires the Docker engine and every
// program, and fails when one is missing. The timings are written to docs/e2e-timeline.md.
package e2e
