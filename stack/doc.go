// Package stack holds the consistency tests of the compose stack: the files docker-compose.yml
// mounts exist; Prometheus' scrape targets, Alertmanager's webhook and the remediator's listen
// port agree with the compose services; the socket proxy allows the remediator what the default
// playbooks need and nothing that would make it root; every Grafana dashboard parses, every
// query in it is valid PromQL (Prometheus' own parser), and every metric a panel or rule reads is
// exported by some component of the repository.
//
// The package has no code of its own: it exists for its tests.
package stack
