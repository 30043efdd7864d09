// Package conformance is the differential conformance suite: every scenario
// in scenarios/*.txt is played once against the Python reference consumers
// and REST API (Daphne, tests/django) and once against the sidecar binary,
// each on a fresh database, on each backend (PostgreSQL and SQLite, as
// TestConformance/<backend>/<file>), and the two normalised transcripts must
// match except where a scenario declares a PROTOCOL.md Divergence (for every
// backend, or with on=<backend> for one).
//
// The scenario format is described in scenarios/README.md. Run with
//
//	go test ./tests/conformance/ -v
//
// (-v prints every expected divergence with the Python and Go transcripts),
// or with CONFORMANCE_SIDES=python to check the scenarios against the Python
// reference alone.
package conformance
