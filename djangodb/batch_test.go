package djangodb

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// fakeStatements stands for the database answering block checks: each
// statement waits for the test to release it, and reports the pairs it
// was asked about.
type fakeStatements struct {
	asked   chan []blockPair
	release chan error
	blocked map[blockPair]bool
}

func newFakeStatements() *fakeStatements {
	return &fakeStatements{asked: make(chan []blockPair), release: make(chan error), blocked: map[blockPair]bool{}}
}

func (f *fakeStatements) checks() *batcher[blockPair, bool] {
	return &batcher[blockPair, bool]{max: 100, run: func(ctx context.Context, pairs []blockPair) ([]bool, error) {
		f.asked <- slices.Clone(pairs)
		if err := <-f.release; err != nil {
			return nil, err
		}
		out := make([]bool, len(pairs))
		for i, p := range pairs {
			out[i] = f.blocked[p]
		}
		return out, nil
	}}
}

type answer struct {
	pair    blockPair
	blocked bool
	err     error
}

// The calls made while a statement runs are answered together by the
// next one, which begins after all of them: none is answered by a
// statement that began before it was made.
func TestBatcher(t *testing.T) {
	f := newFakeStatements()
	b := f.checks()
	f.blocked[blockPair{3, 4}] = true
	answers := make(chan answer)
	ask := func(ctx context.Context, l, tk int64) {
		go func() {
			blocked, err := b.do(ctx, blockPair{l, tk})
			answers <- answer{blockPair{l, tk}, blocked, err}
		}()
	}
	ctx := context.Background()
	ask(ctx, 1, 2)
	if got := <-f.asked; !slices.Equal(got, []blockPair{{1, 2}}) {
		t.Fatalf("first statement asked %v, want the first call alone", got)
	}
	// Three more calls while the first statement runs, one of which gives
	// up before its answer.
	gone, cancel := context.WithCancel(ctx)
	ask(ctx, 3, 4)
	ask(gone, 5, 6)
	ask(ctx, 7, 8)
	waitPending(t, b, 3)
	cancel()
	if a := <-answers; a.pair != (blockPair{5, 6}) || !errors.Is(a.err, context.Canceled) {
		t.Fatalf("the cancelled call answered %+v, want context.Canceled", a)
	}
	f.release <- nil
	if a := <-answers; a.pair != (blockPair{1, 2}) || a.blocked || a.err != nil {
		t.Fatalf("first answer %+v, want (1, 2) not blocked", a)
	}
	got := <-f.asked
	slices.SortFunc(got, func(a, b blockPair) int { return int(a.listener - b.listener) })
	if !slices.Equal(got, []blockPair{{3, 4}, {5, 6}, {7, 8}}) {
		t.Fatalf("second statement asked %v, want the three calls made during the first", got)
	}
	f.release <- nil
	want := map[blockPair]bool{{3, 4}: true, {7, 8}: false}
	for range want {
		a := <-answers
		if w, ok := want[a.pair]; !ok || a.blocked != w || a.err != nil {
			t.Errorf("answer %+v, want blocked=%v", a, w)
		}
	}

	// A statement's error is every caller's in it; the next call starts
	// a new statement.
	ask(ctx, 1, 2)
	<-f.asked
	ask(ctx, 3, 4)
	ask(ctx, 7, 8)
	waitPending(t, b, 2)
	f.release <- nil
	<-answers
	<-f.asked
	dbErr := errors.New("connection reset")
	f.release <- dbErr
	for range 2 {
		if a := <-answers; !errors.Is(a.err, dbErr) {
			t.Errorf("answer %+v, want the statement's error", a)
		}
	}
	ask(ctx, 3, 4)
	<-f.asked
	f.release <- nil
	if a := <-answers; !a.blocked || a.err != nil {
		t.Errorf("after a failed statement: %+v, want (3, 4) blocked", a)
	}
}

// waitPending waits until n calls wait for the next statement.
func waitPending(t *testing.T, b *batcher[blockPair, bool], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		got := len(b.pending)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
	}
}
