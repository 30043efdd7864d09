// Package pyjson reads and writes JSON exactly as Python's json module does
// with default arguments, so that the sidecar's frames are byte-identical to
// those of the Django Channels consumer it replaces (PROTOCOL.md sections 5–7).
//
// Marshal is json.dumps(v): separators ", " and ": ", ensure_ascii=True,
// allow_nan=True, floats printed as float.__repr__. Decode is json.loads(s)
// with strict=True. Str is Python's str(v).
//
// Values are plain Go values, chosen so that no reflection is needed:
//
//	None   nil
//	bool   bool
//	int    int64, or *big.Int when outside the int64 range
//	float  float64
//	str    string
//	list   List
//	dict   Object (insertion-ordered members)
//
// Known differences from Python, all on inputs Python itself handles badly:
//
//   - A lone surrogate escape such as "\ud800" decodes to U+FFFD (Go strings
//     are UTF-8 and cannot hold one); Python keeps the lone surrogate and would
//     re-encode it as "\ud800". This is the only difference on valid input.
//   - Nesting deeper than MaxDepth is a *DepthError. CPython raises
//     RecursionError near depth 1000 (its recursion limit), which the
//     Python consumer did not catch.
//   - Error offsets are byte offsets into the input, not character indices.
//   - Marshal and Str replace invalid UTF-8 in Go strings by U+FFFD; Python
//     strings cannot hold invalid UTF-8.
package pyjson

import "math/big"

// Value is a JSON value as Python's json module sees it: nil (None), bool,
// int64, *big.Int (ints outside the int64 range), float64, string, List or
// Object. Marshal and Str accept a few more Go types; see AppendMarshal.
type Value = any

// List is a Python list.
type List []Value

// Member is one key and value of an Object.
type Member struct {
	Key   string
	Value Value
}

// Object is a Python dict: members in insertion order. Decode never produces
// duplicate keys; Set keeps them unique. Marshal writes the members as they
// are, so an Object built by hand with a repeated key is written twice.
type Object []Member

// Get returns the value of key, the last one if the key is repeated.
func (o Object) Get(key string) (Value, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].Key == key {
			return o[i].Value, true
		}
	}
	return nil, false
}

// Set replaces the value of key in place, keeping its position, or appends
// the key when it is absent, as assigning to a Python dict does.
func (o *Object) Set(key string, v Value) {
	s := *o
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].Key == key {
			s[i].Value = v
			return
		}
	}
	*o = append(s, Member{Key: key, Value: v})
}

// Raw is JSON text already encoded as this package (json.dumps) encodes it.
// Marshal inserts it verbatim, without checking it; a nil or empty Raw is
// written as null.
type Raw []byte

// Marshaler is implemented by types that append their own json.dumps text,
// so that domain types can be written without building an Object first.
type Marshaler interface {
	AppendPyJSON(dst []byte) ([]byte, error)
}

// Truthy reports whether v is true in a Python boolean context (bool(v)):
// None, False, 0, 0.0, -0.0 and empty strings, lists and dicts are
// false; everything else, NaN included, is true.
func Truthy(v Value) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case int:
		return x != 0
	case *big.Int:
		return x != nil && x.Sign() != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case List:
		return len(x) != 0
	case Object:
		return len(x) != 0
	case []Value:
		return len(x) != 0
	}
	return true
}
