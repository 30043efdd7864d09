package hostile

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/chatsidecar/sidecar/pyjson"
)

// FuzzBoundedDecode: the decoder that stands between a client frame and
// the handlers never builds more values or deeper nesting than its limits,
// fails only with ErrTooMany, ErrTooDeep or a syntax error, and agrees with
// the unbounded decoder on what it accepts. The seeds are the shapes of
// attack d, small: many keys, long lists, deep nesting, and a file_message.
// (pyjson's own FuzzDecodeLimited does the same, but its limits can come
// out negative, meaning none, and it fails at once on them; see the
// report of the hostile suite.)
func FuzzBoundedDecode(f *testing.F) {
	var keys strings.Builder
	keys.WriteString("{")
	for i := 0; i < 5000; i++ {
		keys.WriteString(`"k":0,`)
	}
	keys.WriteString(`"k":0}`)
	for _, s := range []string{
		keys.String(),
		"[" + strings.Repeat("0,", 10000) + "0]",
		strings.Repeat("[", 40) + strings.Repeat("]", 40),
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40),
		`{"type": "file_message", "file": "` + strings.Repeat("QUFB", 1000) + `", "filename": "a.txt", "message": "caption"}`,
		`{"type": "typing", "is_typing": [1, 2.5, -0, 1e400, "\ud800", {"": null}, true, false]}`,
		`{"type": "chat_message", "message": "\u20ac\ud83d\ude00"}`,
	} {
		f.Add([]byte(s), uint8(32), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, depth uint8, values uint16) {
		lim := pyjson.Limits{MaxDepth: int(depth%64) + 1, MaxValues: int(values%8192) + 1}
		v, err := pyjson.DecodeLimited(data, lim)
		if err != nil {
			var syntax *pyjson.SyntaxError
			if !errors.Is(err, pyjson.ErrTooMany) && !errors.Is(err, pyjson.ErrTooDeep) && !errors.As(err, &syntax) {
				t.Fatalf("DecodeLimited(%q): unexpected error %v", data, err)
			}
			return
		}
		n, d := measure(v, 0)
		if n > lim.MaxValues || d > lim.MaxDepth {
			t.Fatalf("DecodeLimited(%q, %+v) built %d values, %d deep", data, lim, n, d)
		}
		full, err := pyjson.Decode(data)
		if err != nil {
			t.Fatalf("DecodeLimited(%q) accepted what Decode refuses: %v", data, err)
		}
		a, errA := pyjson.Marshal(v)
		b, errB := pyjson.Marshal(full)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("DecodeLimited(%q) = %s, Decode = %s (%v, %v)", data, a, b, errA, errB)
		}
	})
}

// measure counts the values of v (itself included) and its nesting: the
// depth of its deepest list or object, a scalar at depth being depth.
func measure(v pyjson.Value, depth int) (values, deepest int) {
	values, deepest = 1, depth
	switch x := v.(type) {
	case pyjson.List:
		deepest = depth + 1
		for _, e := range x {
			n, d := measure(e, depth+1)
			values, deepest = values+n, max(deepest, d)
		}
	case pyjson.Object:
		deepest = depth + 1
		for _, m := range x {
			n, d := measure(m.Value, depth+1)
			values, deepest = values+n, max(deepest, d)
		}
	}
	return values, deepest
}
