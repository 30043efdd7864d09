package pyjson

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of lists and objects, in Decode and in Marshal
// (where it also stops a list that contains itself).
const MaxDepth = 10000

// MaxIntDigits is CPython's default limit on converting between int and
// decimal text (sys.get_int_max_str_digits()): json.loads and json.dumps
// raise ValueError beyond it, and so do Decode and Marshal.
const MaxIntDigits = 4300

// ErrTooDeep is returned when lists and objects nest deeper than MaxDepth.
var ErrTooDeep = errors.New("pyjson: nesting deeper than MaxDepth")

// ErrIntTooLong is returned for an int of more than MaxIntDigits digits.
var ErrIntTooLong = errors.New("pyjson: exceeds the limit (4300 digits) for integer string conversion")

// UnsupportedTypeError is returned by Marshal for a Go type it does not know.
type UnsupportedTypeError struct {
	Value any
}

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("pyjson: cannot marshal value of type %T", e.Value)
}

// Marshal returns json.dumps(v) with default arguments.
func Marshal(v Value) ([]byte, error) {
	return AppendMarshal(make([]byte, 0, 256), v)
}

// AppendMarshal appends json.dumps(v) to dst. Besides the Value types it
// accepts every Go integer type, float32, []any, []Member, []Object,
// []string, []int64, Raw (inserted verbatim) and Marshaler. Anything else is
// an *UnsupportedTypeError. On error dst is returned with partial output.
func AppendMarshal(dst []byte, v Value) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v Value, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case float64:
		return appendFloatJSON(dst, x), nil
	case Object:
		return appendObject(dst, x, depth)
	case List:
		return appendList(dst, x, depth)
	case []any:
		return appendList(dst, x, depth)
	case Raw:
		if len(x) == 0 {
			return append(dst, "null"...), nil
		}
		return append(dst, x...), nil
	case *big.Int:
		return appendBigInt(dst, x)
	case []Member:
		return appendObject(dst, x, depth)
	case []Object:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		if len(x) == 0 {
			return append(dst, "[]"...), nil
		}
		dst = append(dst, '[')
		for i, o := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendObject(dst, o, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendString(dst, s)
		}
		return append(dst, ']'), nil
	case []int64:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		dst = append(dst, '[')
		for i, n := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = strconv.AppendInt(dst, n, 10)
		}
		return append(dst, ']'), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float32:
		return appendFloatJSON(dst, float64(x)), nil
	case Marshaler:
		return x.AppendPyJSON(dst)
	}
	return dst, &UnsupportedTypeError{Value: v}
}

func appendList(dst []byte, l []Value, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, ErrTooDeep
	}
	if len(l) == 0 {
		return append(dst, "[]"...), nil
	}
	dst = append(dst, '[')
	var err error
	for i, e := range l {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func appendObject(dst []byte, o []Member, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, ErrTooDeep
	}
	if len(o) == 0 {
		return append(dst, "{}"...), nil
	}
	dst = append(dst, '{')
	var err error
	for i := range o {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendString(dst, o[i].Key)
		dst = append(dst, ": "...)
		if dst, err = appendValue(dst, o[i].Value, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendBigInt(dst []byte, x *big.Int) ([]byte, error) {
	if x == nil {
		return append(dst, "null"...), nil
	}
	if x.IsInt64() {
		return strconv.AppendInt(dst, x.Int64(), 10), nil
	}
	n := len(dst)
	dst = x.Append(dst, 10)
	digits := len(dst) - n
	if x.Sign() < 0 {
		digits--
	}
	if digits > MaxIntDigits {
		return dst[:n], ErrIntTooLong
	}
	return dst, nil
}

// appendFloatJSON appends a float as json.dumps does: float.__repr__, with
// Infinity, -Infinity and NaN for the non-finite values.
func appendFloatJSON(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f != f:
		return append(dst, "NaN"...)
	}
	return appendFloatRepr(dst, f)
}

// appendFloatRepr appends a finite float as Python's float.__repr__: the
// shortest digits that round-trip, in fixed notation when the decimal
// exponent is in [-4, 16) (always with a fraction, "1.0"), else in
// scientific notation with a signed exponent of at least two digits
// ("1e+16", "1.5e-07"). strconv's 'e' format already prints the latter form.
func appendFloatRepr(dst []byte, f float64) []byte {
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	e := len(b) - 4 // b ends in e±dd or e±ddd
	for b[e] != 'e' {
		e--
	}
	exp := 0
	for _, c := range b[e+2:] {
		exp = exp*10 + int(c-'0')
	}
	if b[e+1] == '-' {
		exp = -exp
	}
	if exp < -4 || exp >= 16 {
		return append(dst, b...)
	}
	// Digits without the point: b[0] and b[2:e] when there is a fraction.
	var digs [20]byte
	d := append(digs[:0], b[0])
	if e > 1 {
		d = append(d, b[2:e]...)
	}
	if exp < 0 {
		dst = append(dst, "0."...)
		for i := -1; i > exp; i-- {
			dst = append(dst, '0')
		}
		return append(dst, d...)
	}
	if len(d) <= exp+1 {
		dst = append(dst, d...)
		for i := len(d); i <= exp; i++ {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	}
	dst = append(dst, d[:exp+1]...)
	dst = append(dst, '.')
	return append(dst, d[exp+1:]...)
}

// asciiSafe marks the bytes json.dumps writes as they are with ensure_ascii:
// printable ASCII except '"' and '\\'.
var asciiSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as json.dumps does with ensure_ascii=True: for
// encoders of fixed shapes that need no Value.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString appends s as json.dumps does with ensure_ascii=True.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = appendU4(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			dst = appendU4(appendU4(dst, r1), r2)
		} else {
			dst = appendU4(dst, r) // invalid UTF-8 is RuneError, U+FFFD
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
