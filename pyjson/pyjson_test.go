package pyjson

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"
)

// equal is structural equality of decoded values: same types, floats equal
// by bits (NaN equals NaN, -0.0 differs from 0.0), members in order.
func equal(a, b Value) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool, int64, string:
		return a == b
	case float64:
		y, ok := b.(float64)
		return ok && (math.Float64bits(x) == math.Float64bits(y) || x != x && y != y)
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case List:
		y, ok := b.(List)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case Object:
		y, ok := b.(Object)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].Key != y[i].Key || !equal(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	}
	return false
}

func mustMarshal(t testing.TB, v Value) string {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%#v): %v", v, err)
	}
	return string(b)
}

func TestDecodeGolden(t *testing.T) {
	for _, c := range decodeGolden {
		v, err := Decode([]byte(c.in))
		if c.err {
			if err == nil {
				t.Errorf("Decode(%q) = %#v, want an error as json.loads raises", c.in, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("Decode(%q): %v", c.in, err)
			continue
		}
		if got := mustMarshal(t, v); got != c.dumps {
			t.Errorf("Marshal(Decode(%q))\n got %q\nwant %q", c.in, got, c.dumps)
		}
		if got := Str(v); got != c.str {
			t.Errorf("Str(Decode(%q))\n got %q\nwant %q", c.in, got, c.str)
		}
		// json.dumps output decodes to the same value.
		v2, err := Decode([]byte(c.dumps))
		if err != nil || !equal(v, v2) {
			t.Errorf("Decode(%q) = %#v, %v; want %#v", c.dumps, v2, err, v)
		}
	}
}

func TestFloatGolden(t *testing.T) {
	for _, c := range floatGolden {
		f := math.Float64frombits(c.bits)
		if got := mustMarshal(t, f); got != c.dumps {
			t.Errorf("Marshal(%v) = %q, want %q", f, got, c.dumps)
		}
		if got := Str(f); got != c.repr {
			t.Errorf("Str(%v) = %q, want %q", f, got, c.repr)
		}
		v, err := Decode([]byte(c.dumps))
		if err != nil || !equal(v, f) {
			t.Errorf("Decode(%q) = %#v, %v; want %v", c.dumps, v, err, f)
		}
	}
}

func TestStringGolden(t *testing.T) {
	for _, c := range stringGolden {
		if got := mustMarshal(t, c.s); got != c.dumps {
			t.Errorf("Marshal(%q) = %q, want %q", c.s, got, c.dumps)
		}
		if got := Str(List{c.s}); got != "["+c.repr+"]" {
			t.Errorf("Str([%q]) = %q, want [%s]", c.s, got, c.repr)
		}
		if got := Str(c.s); got != c.s {
			t.Errorf("Str(%q) = %q", c.s, got)
		}
		v, err := Decode([]byte(c.dumps))
		if err != nil || v != c.s {
			t.Errorf("Decode(%q) = %q, %v; want %q", c.dumps, v, err, c.s)
		}
	}
}

// Lone surrogates are the documented difference: Python keeps them, Go
// strings cannot, so they become U+FFFD.
func TestLoneSurrogates(t *testing.T) {
	cases := []struct{ in, want string }{
		{`"\ud800"`, "\ufffd"},
		{`"\udc00"`, "\ufffd"},
		{`"\ud800\u0041"`, "\ufffdA"},
		{`"\ud83d\ud83d\ude00"`, "\ufffd\U0001F600"},
		{`"\udc00\ud800"`, "\ufffd\ufffd"},
		{`"\ud800x"`, "\ufffdx"},
		{`"\ud800\n"`, "\ufffd\n"},
		{`"\uDBFF\uDFFF"`, "\U0010FFFF"},
	}
	for _, c := range cases {
		v, err := Decode([]byte(c.in))
		if err != nil || v != c.want {
			t.Errorf("Decode(%s) = %q, %v; want %q", c.in, v, err, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		in     string
		msg    string
		offset int
	}{
		{``, "Expecting value", 0},
		{` `, "Expecting value", 1},
		{`[1,]`, "Expecting value", 3},
		{`{"a":1,}`, "Expecting property name enclosed in double quotes", 7},
		{`{"a" 1}`, "Expecting ':' delimiter", 5},
		{`[1 2]`, "Expecting ',' delimiter", 3},
		{`"abc`, "Unterminated string starting at", 0},
		{"\"\t\"", "Invalid control character at", 1},
		{`"\x"`, "Invalid \\escape", 1},
		{`"\u12g4"`, "Invalid \\uXXXX escape", 2},
		{`true false`, "Extra data", 5},
		{`01`, "Extra data", 1},
		{"\"\xff\"", "Invalid UTF-8", 1},
		{"\xef\xbb\xbf1", "Expecting value", 0},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Msg != c.msg || se.Offset != c.offset {
			t.Errorf("Decode(%q) error = %v, want %s at offset %d", c.in, err, c.msg, c.offset)
		}
	}
	long := strings.Repeat("7", MaxIntDigits+1)
	for _, in := range []string{long, "-" + long, "[" + long + "]"} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrIntTooLong) {
			t.Errorf("Decode(%d digits) error = %v, want ErrIntTooLong", len(in), err)
		}
	}
}

func TestDepth(t *testing.T) {
	for _, open := range []string{"[", `{"k":`} {
		closing := map[string]string{"[": "]", `{"k":`: "}"}[open]
		ok := strings.Repeat(open, MaxDepth) + "0" + strings.Repeat(closing, MaxDepth)
		v, err := Decode([]byte(ok))
		if err != nil {
			t.Fatalf("Decode(depth %d): %v", MaxDepth, err)
		}
		if got := mustMarshal(t, v); strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(ok, " ", "") {
			t.Errorf("Marshal(depth %d) does not round-trip", MaxDepth)
		}
		_ = Str(v)
		deep := open + ok + closing
		if _, err := Decode([]byte(deep)); !errors.Is(err, ErrTooDeep) {
			t.Errorf("Decode(depth %d) error = %v, want ErrTooDeep", MaxDepth+1, err)
		}
	}
	// Far beyond the limit: an error, not a stack overflow.
	if _, err := Decode([]byte(strings.Repeat("[", 1<<20))); !errors.Is(err, ErrTooDeep) {
		t.Errorf("Decode(1<<20 '[') error = %v, want ErrTooDeep", err)
	}
	// A list that contains itself.
	l := make(List, 1)
	l[0] = l
	if _, err := Marshal(l); !errors.Is(err, ErrTooDeep) {
		t.Errorf("Marshal(cyclic list) error = %v, want ErrTooDeep", err)
	}
}

func TestDuplicateKeys(t *testing.T) {
	// Beyond the linear-scan limit of setMember, the index takes over.
	var in strings.Builder
	in.WriteString("{")
	var want strings.Builder
	want.WriteString("{")
	for i := 0; i < 40; i++ {
		if i > 0 {
			in.WriteString(",")
			want.WriteString(", ")
		}
		fmt.Fprintf(&in, `"k%d":1`, i)
		fmt.Fprintf(&want, `"k%d": `, i)
		if i%3 == 0 {
			want.WriteString("2")
		} else {
			want.WriteString("1")
		}
	}
	for i := 0; i < 40; i += 3 {
		fmt.Fprintf(&in, `,"k%d":2`, i)
	}
	in.WriteString("}")
	want.WriteString("}")
	v, err := Decode([]byte(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, v); got != want.String() {
		t.Errorf("got  %s\nwant %s", got, want.String())
	}
}

func TestObject(t *testing.T) {
	var o Object
	o.Set("type", "error")
	o.Set("message", "x")
	o.Set("type", "chat_message")
	if got := mustMarshal(t, o); got != `{"type": "chat_message", "message": "x"}` {
		t.Errorf("got %s", got)
	}
	if v, ok := o.Get("message"); !ok || v != "x" {
		t.Errorf("Get(message) = %v, %v", v, ok)
	}
	if _, ok := o.Get("nope"); ok {
		t.Error("Get(nope) found")
	}
	dup := Object{{"a", int64(1)}, {"a", int64(2)}}
	if v, _ := dup.Get("a"); v != int64(2) {
		t.Errorf("Get on a repeated key = %v, want the last", v)
	}
}

// The message object of PROTOCOL.md section 6, as Python prints it.
func TestMessageFrame(t *testing.T) {
	want := `{"type": "chat_message", "message": {"id": 42, "conversation": 7, "sender": {"id": 5, "email": "t@example.com", "full_name": "Z\u00e9 \ud83d\ude00", "user_type": "talker"}, "content": "Hello</script> & \"you\"\n", "message_type": "text", "created_at": "2026-01-14T10:00:00.123456+00:00", "is_read": false, "file_attachment": null}}`
	if got := mustMarshal(t, chatFrame()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func chatFrame() Object {
	return Object{
		{"type", "chat_message"},
		{"message", Object{
			{"id", int64(42)},
			{"conversation", int64(7)},
			{"sender", Object{
				{"id", int64(5)},
				{"email", "t@example.com"},
				{"full_name", "Zé 😀"},
				{"user_type", "talker"},
			}},
			{"content", "Hello</script> & \"you\"\n"},
			{"message_type", "text"},
			{"created_at", "2026-01-14T10:00:00.123456+00:00"},
			{"is_read", false},
			{"file_attachment", nil},
		}},
	}
}

type point struct{ x, y int }

func (p point) AppendPyJSON(dst []byte) ([]byte, error) {
	return AppendMarshal(dst, List{p.x, p.y})
}

func TestMarshalGoTypes(t *testing.T) {
	huge, _ := new(big.Int).SetString("-"+strings.Repeat("9", 30), 10)
	cases := []struct {
		v    Value
		want string
	}{
		{nil, "null"},
		{true, "true"},
		{int(-3), "-3"},
		{int8(-8), "-8"},
		{int16(16), "16"},
		{int32(-32), "-32"},
		{int64(math.MinInt64), "-9223372036854775808"},
		{uint(7), "7"},
		{uint8(255), "255"},
		{uint16(65535), "65535"},
		{uint32(math.MaxUint32), "4294967295"},
		{uint64(math.MaxUint64), "18446744073709551615"},
		{float32(0.1), "0.10000000149011612"},
		{math.Inf(-1), "-Infinity"},
		{huge, "-" + strings.Repeat("9", 30)},
		{big.NewInt(5), "5"},
		{[]any{}, "[]"},
		{List{}, "[]"},
		{Object{}, "{}"},
		{[]Member{{"a", List{}}}, `{"a": []}`},
		{[]Object{{}, {{"k", Raw(`{"x":1}`)}}}, `[{}, {"k": {"x":1}}]`},
		{[]Object{}, "[]"},
		{[]string{"a", "é"}, `["a", "\u00e9"]`},
		{[]int64{}, "[]"},
		{[]int64{1, -2}, "[1, -2]"},
		{Raw(nil), "null"},
		{List{Raw("[1,2]"), point{1, 2}}, "[[1,2], [1, 2]]"},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
	}
	for _, c := range cases {
		if got := mustMarshal(t, c.v); got != c.want {
			t.Errorf("Marshal(%#v) = %s, want %s", c.v, got, c.want)
		}
	}
	for _, v := range []Value{map[string]any{}, struct{}{}, List{1, []byte("x")}, &struct{}{}} {
		var ute *UnsupportedTypeError
		if _, err := Marshal(v); !errors.As(err, &ute) {
			t.Errorf("Marshal(%#v) error = %v, want *UnsupportedTypeError", v, err)
		}
	}
	tooLong, _ := new(big.Int).SetString(strings.Repeat("9", MaxIntDigits+1), 10)
	if _, err := Marshal(List{tooLong}); !errors.Is(err, ErrIntTooLong) {
		t.Errorf("Marshal(4301 digits) error = %v, want ErrIntTooLong", err)
	}
	ok, _ := new(big.Int).SetString("-"+strings.Repeat("9", MaxIntDigits), 10)
	if _, err := Marshal(ok); err != nil {
		t.Errorf("Marshal(-(4300 digits)): %v", err)
	}
	// AppendMarshal appends.
	b, err := AppendMarshal([]byte("x"), List{int64(1)})
	if err != nil || string(b) != "x[1]" {
		t.Errorf("AppendMarshal = %q, %v", b, err)
	}
}

func TestStr(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		// "Unknown message type: <type>" of PROTOCOL.md section 5.
		{nil, "None"},
		{true, "True"},
		{false, "False"},
		{int64(5), "5"},
		{2.5, "2.5"},
		{"", ""},
		{"it's", "it's"},
		{math.Inf(1), "inf"},
		{List{1, "a", nil}, "[1, 'a', None]"},
		{Object{{"k", true}}, "{'k': True}"},
		{Object{{"a", 1}, {"b", List{true, nil}}}, "{'a': 1, 'b': [True, None]}"},
		{Raw(`"raw"`), "raw"},
		{Raw(`[1.0]`), "[1.0]"},
		{Raw(nil), "None"},
		{point{1, 2}, "[1, 2]"},
		{[]string{"x"}, "['x']"},
		{uint64(math.MaxUint64), "18446744073709551615"},
		{map[string]any{}, "<unsupported map[string]interface {}>"},
		{List{"\u0378\u00a0\u00e9\U0001F600"}, "['\\u0378\\xa0\u00e9\U0001F600']"},
		// Known difference: U+1E04B was assigned in Unicode 15; Python 3.11
		// (Unicode 14) prints '\U0001e04b', unicode.IsPrint keeps it.
		{List{"\U0001E04B"}, "['\U0001E04B']"},
	}
	for _, c := range cases {
		if got := Str(c.v); got != c.want {
			t.Errorf("Str(%#v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := string(AppendStr([]byte("type: "), nil)); got != "type: None" {
		t.Errorf("AppendStr = %q", got)
	}
}

func TestTruthy(t *testing.T) {
	falsy := []Value{nil, false, int64(0), 0, new(big.Int), 0.0, math.Copysign(0, -1), "", List{}, Object{}}
	truthy := []Value{true, int64(-1), math.NaN(), "0", " ", List{nil}, Object{{"", nil}}, big.NewInt(1)}
	for _, v := range falsy {
		if Truthy(v) {
			t.Errorf("Truthy(%#v) = true", v)
		}
	}
	for _, v := range truthy {
		if !Truthy(v) {
			t.Errorf("Truthy(%#v) = false", v)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeGolden {
		f.Add([]byte(c.in))
	}
	f.Add([]byte(`"\ud800\udc00\ud800"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			return
		}
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(Decode(%q)): %v", data, err)
		}
		if !utf8.Valid(b) {
			t.Fatalf("Marshal(Decode(%q)) = %q: not UTF-8", data, b)
		}
		for _, c := range b {
			if c >= utf8.RuneSelf {
				t.Fatalf("Marshal(Decode(%q)) = %q: not ASCII", data, b)
			}
		}
		v2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Marshal(Decode(%q))) = %q: %v", data, b, err)
		}
		if !equal(v, v2) {
			t.Fatalf("round trip of %q: %#v != %#v", data, v, v2)
		}
		b2, _ := Marshal(v2)
		if string(b) != string(b2) {
			t.Fatalf("Marshal not stable: %q != %q", b, b2)
		}
		_ = Str(v)
	})
}

func BenchmarkMarshalMessage(b *testing.B) {
	msg := chatFrame()[1].Value // the 8-key message object
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendMarshal(buf[:0], msg)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"type": "chat_message", "message": "Hello there, how are you doing today? \u00e9\ud83d\ude00"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame, _ := Marshal(chatFrame())
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodeLimited refuses input with more values or deeper nesting than its
// limits, and counts every value once: scalars, lists and objects.
func TestDecodeLimited(t *testing.T) {
	lim := Limits{MaxDepth: 3, MaxValues: 5}
	for in, want := range map[string]error{
		`[1, 2, 3, 4]`:        nil, // the list and four numbers
		`[1, 2, 3, 4, 5]`:     ErrTooMany,
		`{"a": {"b": [1]}}`:   nil,
		`{"a": {"b": [[1]]}}`: ErrTooDeep,
		`{"a": 1, "b": "x"}`:  nil,
		`{"a": [], "b": {}, "c": null, "d": 1, "e": 2}`: ErrTooMany,
	} {
		if _, err := DecodeLimited([]byte(in), lim); !errors.Is(err, want) && err != want {
			t.Errorf("DecodeLimited(%s) error = %v, want %v", in, err, want)
		}
	}
	if _, err := DecodeLimited([]byte(`[`+strings.Repeat(`0,`, 1<<20)+`0]`), Limits{MaxDepth: 10, MaxValues: 1000}); !errors.Is(err, ErrTooMany) {
		t.Errorf("a million zeros: %v, want ErrTooMany", err)
	}
}

// FuzzDecodeLimited: within limits the decoder never builds more values
// than allowed, and agrees with Decode on everything it accepts.
func FuzzDecodeLimited(f *testing.F) {
	for _, c := range decodeGolden {
		f.Add([]byte(c.in), 8, 50)
	}
	f.Fuzz(func(t *testing.T, data []byte, depth, values int) {
		lim := Limits{MaxDepth: int(uint(depth)%64) + 1, MaxValues: int(uint(values)%1000) + 1}
		v, err := DecodeLimited(data, lim)
		if err != nil {
			return
		}
		if n := countValues(v); n > lim.MaxValues {
			t.Fatalf("DecodeLimited(%q, %+v) built %d values", data, lim, n)
		}
		full, err := Decode(data)
		if err != nil || !equal(v, full) {
			t.Fatalf("DecodeLimited(%q) = %#v, Decode = %#v, %v", data, v, full, err)
		}
	})
}

func countValues(v Value) int {
	n := 1
	switch x := v.(type) {
	case List:
		for _, e := range x {
			n += countValues(e)
		}
	case Object:
		for _, m := range x {
			n += countValues(m.Value)
		}
	}
	return n
}
