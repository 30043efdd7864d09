package pgfeed_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCommitToApplied measures one sidecar write as the cache will do
// it: commit a message, take CurrentLSN, WaitFor it. Besides ns/op (the
// three together) it reports the time from the commit's return to WaitFor's
// (wait-µs), of which CurrentLSN's round trip is a part (lsn-µs).
//
//	go test -run '^$' -bench CommitToApplied ./pgfeed/
func BenchmarkCommitToApplied(b *testing.B) {
	e := setup(b, nil)
	var wait, lsn time.Duration
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		e.insertMessage(b, "bench")
		committed := time.Now()
		l := e.lsn(b)
		lsn += time.Since(committed)
		if err := e.feed.WaitFor(ctx, l); err != nil {
			b.Fatal(err)
		}
		wait += time.Since(committed)
	}
	b.ReportMetric(float64(wait.Microseconds())/float64(b.N), "wait-µs")
	b.ReportMetric(float64(lsn.Microseconds())/float64(b.N), "lsn-µs")
}
