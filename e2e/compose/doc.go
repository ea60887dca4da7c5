// Package compose starts the shipped docker-compose.yml, unchanged, on the local engine and
// heals README scenarios through it (`make compose-e2e`). Images that cannot be pulled are built
// by .ci/compose-images under test-only names and wired in by a generated override file; the
// socket proxy is the one stand-in (package socketproxy). It writes docs/compose-timeline.md.
package compose
