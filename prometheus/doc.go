// Package prometheus holds the Prometheus configuration of the selfheal stack
// (prometheus.yml). It has no Go code of its own: its tests check the file with promtool and run
// a real Prometheus with it, discovering a real demo service through a stand-in Docker engine
// API, to see the shipped relabeling produce the contract's target labels and the repository's
// rules fire and resolve on real metrics.
package prometheus
