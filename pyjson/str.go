package pyjson

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Str returns Python's str(v): None, True, False, ints in decimal, floats as
// float.__repr__ (inf, -inf and nan), a string as it is, and lists and dicts
// as their repr: [1, 'a', None], {'k': True}.
//
// Strings inside lists and dicts are quoted as str.__repr__ does. Whether a
// non-ASCII character is kept or escaped (\xNN, \uNNNN, \UNNNNNNNN) follows
// unicode.IsPrint, an approximation of str.isprintable: both exclude the
// categories C*, Z* but the ASCII space; they can differ on characters the
// two Unicode versions classify differently. A Raw is decoded first (and
// printed as its text if it does not decode); a type Marshal would refuse
// prints as "<unsupported T>". An int over MaxIntDigits digits prints in
// full where Python would raise ValueError.
func Str(v Value) string {
	switch x := v.(type) {
	case string:
		return x
	case Raw:
		if len(x) == 0 {
			return "None"
		}
		dv, err := Decode(x)
		if err != nil {
			return string(x)
		}
		if s, ok := dv.(string); ok {
			return s
		}
		v = dv
	}
	return string(appendRepr(nil, v, 0))
}

// AppendStr appends Str(v) to dst.
func AppendStr(dst []byte, v Value) []byte {
	if s, ok := v.(string); ok {
		return append(dst, s...)
	}
	return append(dst, Str(v)...)
}

func appendRepr(dst []byte, v Value, depth int) []byte {
	if depth > MaxDepth {
		return append(dst, "..."...)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "None"...)
	case bool:
		if x {
			return append(dst, "True"...)
		}
		return append(dst, "False"...)
	case string:
		return appendQuoted(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case float64:
		return appendFloatStr(dst, x)
	case float32:
		return appendFloatStr(dst, float64(x))
	case *big.Int:
		if x == nil {
			return append(dst, "None"...)
		}
		return x.Append(dst, 10)
	case List:
		return appendListRepr(dst, x, depth)
	case []any:
		return appendListRepr(dst, x, depth)
	case Object:
		return appendObjectRepr(dst, x, depth)
	case []Member:
		return appendObjectRepr(dst, x, depth)
	case []Object:
		dst = append(dst, '[')
		for i, o := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendObjectRepr(dst, o, depth+1)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendQuoted(dst, s)
		}
		return append(dst, ']')
	case []int64:
		dst = append(dst, '[')
		for i, n := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = strconv.AppendInt(dst, n, 10)
		}
		return append(dst, ']')
	case int8:
		return strconv.AppendInt(dst, int64(x), 10)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case Raw:
		if len(x) == 0 {
			return append(dst, "None"...)
		}
		dv, err := Decode(x)
		if err != nil {
			return append(dst, x...)
		}
		return appendRepr(dst, dv, depth)
	case Marshaler:
		b, err := x.AppendPyJSON(nil)
		if err != nil {
			break
		}
		dv, err := Decode(b)
		if err != nil {
			break
		}
		return appendRepr(dst, dv, depth)
	}
	return fmt.Appendf(dst, "<unsupported %T>", v)
}

func appendListRepr(dst []byte, l []Value, depth int) []byte {
	dst = append(dst, '[')
	for i, e := range l {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendRepr(dst, e, depth+1)
	}
	return append(dst, ']')
}

func appendObjectRepr(dst []byte, o []Member, depth int) []byte {
	dst = append(dst, '{')
	for i := range o {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendQuoted(dst, o[i].Key)
		dst = append(dst, ": "...)
		dst = appendRepr(dst, o[i].Value, depth+1)
	}
	return append(dst, '}')
}

// appendFloatStr appends str(f) for a Python float.
func appendFloatStr(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case f != f:
		return append(dst, "nan"...)
	}
	return appendFloatRepr(dst, f)
}

// appendQuoted appends s as str.__repr__ does: single quotes, unless s has a
// single quote and no double quote; backslash, the quote, \t, \n and \r
// escaped; other non-printable characters as \xNN, \uNNNN or \UNNNNNNNN.
func appendQuoted(dst []byte, s string) []byte {
	quote := byte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			quote = '"'
		} else if s[i] == '"' {
			quote = '\''
			break
		}
	}
	dst = append(dst, quote)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == quote || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsPrint(r): // invalid UTF-8 is U+FFFD, printable
			dst = utf8.AppendRune(dst, r)
		case r <= 0xff:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r <= 0xffff:
			dst = appendU4(dst, r)
		default:
			dst = append(dst, '\\', 'U')
			for shift := 28; shift >= 0; shift -= 4 {
				dst = append(dst, hexDigits[r>>uint(shift)&0xf])
			}
		}
		i += size
	}
	return append(dst, quote)
}
