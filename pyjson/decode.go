package pyjson

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is returned by Decode for input json.loads refuses. Msg is the
// message of Python's JSONDecodeError ("Expecting value", "Extra data", ...);
// Offset is a byte offset into the input.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pyjson: %s at offset %d", e.Msg, e.Offset)
}

// Decode parses data as json.loads does: NaN, Infinity and -Infinity are
// accepted; a number with a fraction or exponent is a float64 (±Inf on
// overflow, as float() gives); an integer is an int64, or a *big.Int outside
// that range (more than MaxIntDigits digits is ErrIntTooLong); a repeated key
// keeps the position of its first occurrence and the value of its last;
// whitespace is space, \t, \n and \r only; raw control characters inside
// strings, invalid UTF-8 and trailing data are errors. Nesting deeper than
// MaxDepth is ErrTooDeep. A lone surrogate escape decodes to U+FFFD.
func Decode(data []byte) (Value, error) {
	return DecodeLimited(data, Limits{MaxDepth: MaxDepth})
}

// Limits bound what a decode may build, so its memory stays within a small
// multiple of the input whatever the input holds.
type Limits struct {
	MaxDepth  int // nesting of lists and objects; deeper is ErrTooDeep
	MaxValues int // values (scalars, lists, objects) in all; more is ErrTooMany; 0: no bound
}

// ErrTooMany is returned by DecodeLimited for input with more values than
// Limits.MaxValues.
var ErrTooMany = errors.New("pyjson: too many values")

// DecodeLimited is Decode within limits.
func DecodeLimited(data []byte, lim Limits) (Value, error) {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return nil, &SyntaxError{Msg: "Invalid UTF-8", Offset: i}
	}
	d := decoder{data: data, maxDepth: lim.MaxDepth, values: lim.MaxValues}
	if lim.MaxValues <= 0 {
		d.values = -1
	}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.errorf("Extra data")
	}
	return v, nil
}

type decoder struct {
	data     []byte
	pos      int
	maxDepth int
	values   int // values left to decode; -1: no bound
}

func (d *decoder) errorf(msg string) error {
	return &SyntaxError{Msg: msg, Offset: d.pos}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) hasPrefix(s string) bool {
	return len(d.data)-d.pos >= len(s) && string(d.data[d.pos:d.pos+len(s)]) == s
}

// value parses the value at d.pos, which is not whitespace.
func (d *decoder) value(depth int) (Value, error) {
	if d.values == 0 {
		return nil, ErrTooMany
	}
	if d.values > 0 {
		d.values--
	}
	if d.pos >= len(d.data) {
		return nil, d.errorf("Expecting value")
	}
	switch c := d.data[d.pos]; c {
	case '"':
		return d.str()
	case '{':
		return d.object(depth + 1)
	case '[':
		return d.list(depth + 1)
	case 'n':
		if d.hasPrefix("null") {
			d.pos += 4
			return nil, nil
		}
	case 't':
		if d.hasPrefix("true") {
			d.pos += 4
			return true, nil
		}
	case 'f':
		if d.hasPrefix("false") {
			d.pos += 5
			return false, nil
		}
	case 'N':
		if d.hasPrefix("NaN") {
			d.pos += 3
			return math.NaN(), nil
		}
	case 'I':
		if d.hasPrefix("Infinity") {
			d.pos += 8
			return math.Inf(1), nil
		}
	case '-':
		if d.hasPrefix("-Infinity") {
			d.pos += 9
			return math.Inf(-1), nil
		}
		return d.number()
	default:
		if c >= '0' && c <= '9' {
			return d.number()
		}
	}
	return nil, d.errorf("Expecting value")
}

// number parses -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, the pattern
// of Python's scanner. A '.' or 'e' not followed by digits ends the number
// before it, as in Python; what follows is then an error for the caller.
func (d *decoder) number() (Value, error) {
	data := d.data
	start := d.pos
	i := start
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i++
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return nil, d.errorf("Expecting value")
	}
	intEnd := i
	isFloat := false
	if i+1 < len(data) && data[i] == '.' && data[i+1] >= '0' && data[i+1] <= '9' {
		i += 2
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		isFloat = true
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		j := i + 1
		if j < len(data) && (data[j] == '-' || data[j] == '+') {
			j++
		}
		if j < len(data) && data[j] >= '0' && data[j] <= '9' {
			for j < len(data) && data[j] >= '0' && data[j] <= '9' {
				j++
			}
			i = j
			isFloat = true
		}
	}
	d.pos = i
	if isFloat {
		// Out of range is ±Inf or 0 with ErrRange, what float() returns.
		f, _ := strconv.ParseFloat(string(data[start:i]), 64)
		return f, nil
	}
	num := data[start:intEnd]
	neg := num[0] == '-'
	digits := num
	if neg {
		digits = num[1:]
	}
	if len(digits) <= 18 { // fits int64 whatever the digits
		var n int64
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	if len(digits) > MaxIntDigits {
		d.pos = start
		return nil, ErrIntTooLong
	}
	if n, err := strconv.ParseInt(string(num), 10, 64); err == nil {
		return n, nil
	}
	b, _ := new(big.Int).SetString(string(num), 10)
	return b, nil
}

// str parses a string at d.pos, the opening quote.
func (d *decoder) str() (string, error) {
	data := d.data
	start := d.pos
	i := start + 1
	// Fast path: no escapes. The input is valid UTF-8, so only '"', '\\'
	// and control characters need looking at.
	for i < len(data) {
		c := data[i]
		if c == '"' {
			d.pos = i + 1
			return string(data[start+1 : i]), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			d.pos = i
			return "", d.errorf("Invalid control character at")
		}
		i++
	}
	if i >= len(data) {
		d.pos = start
		return "", d.errorf("Unterminated string starting at")
	}
	// Slow path, with escapes. The decoded string is never longer than its
	// text, so one allocation of the Builder holds it.
	end := i
	for end < len(data) && data[end] != '"' {
		if data[end] == '\\' {
			end++
		}
		end++
	}
	var buf strings.Builder
	buf.Grow(min(end, len(data)) - start)
	buf.Write(data[start+1 : i])
	for {
		if i >= len(data) {
			d.pos = start
			return "", d.errorf("Unterminated string starting at")
		}
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return buf.String(), nil
		case c < 0x20:
			d.pos = i
			return "", d.errorf("Invalid control character at")
		case c != '\\':
			j := i + 1
			for j < len(data) && data[j] != '"' && data[j] != '\\' && data[j] >= 0x20 {
				j++
			}
			buf.Write(data[i:j])
			i = j
			continue
		}
		// An escape at data[i].
		if i+1 >= len(data) {
			d.pos = start
			return "", d.errorf("Unterminated string starting at")
		}
		switch e := data[i+1]; e {
		case '"', '\\', '/':
			buf.WriteByte(e)
		case 'b':
			buf.WriteByte('\b')
		case 'f':
			buf.WriteByte('\f')
		case 'n':
			buf.WriteByte('\n')
		case 'r':
			buf.WriteByte('\r')
		case 't':
			buf.WriteByte('\t')
		case 'u':
			r, ok := hex4(data, i+2)
			if !ok {
				d.pos = i + 1
				return "", d.errorf("Invalid \\uXXXX escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by an escaped low one is a
				// pair; anything else is a lone surrogate, U+FFFD.
				if r < 0xdc00 && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
					if r2, ok := hex4(data, i+2); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
						r = utf16.DecodeRune(r, r2)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf.WriteRune(r)
			continue
		default:
			d.pos = i
			return "", d.errorf("Invalid \\escape")
		}
		i += 2
	}
}

// key parses an object key at d.pos, sharing the string of keys the chat
// frames use instead of allocating one.
func (d *decoder) key() (string, error) {
	data := d.data
	for i := d.pos + 1; i < len(data) && i-d.pos <= 16; i++ {
		if c := data[i]; c == '"' {
			k := internKey(data[d.pos+1 : i])
			if k == "" {
				break
			}
			d.pos = i + 1
			return k, nil
		} else if c == '\\' || c < 0x20 {
			break
		}
	}
	return d.str()
}

func internKey(b []byte) string {
	switch string(b) {
	case "type":
		return "type"
	case "message":
		return "message"
	case "is_typing":
		return "is_typing"
	case "file":
		return "file"
	case "filename":
		return "filename"
	case "id":
		return "id"
	case "content":
		return "content"
	case "user_id":
		return "user_id"
	}
	return ""
}

func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// list parses a list at d.pos, the '['.
func (d *decoder) list(depth int) (Value, error) {
	if depth > d.maxDepth {
		return nil, ErrTooDeep
	}
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return List{}, nil
	}
	var l List
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		d.skipSpace()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				d.skipSpace()
				continue
			case ']':
				d.pos++
				return l, nil
			}
		}
		return nil, d.errorf("Expecting ',' delimiter")
	}
}

// object parses an object at d.pos, the '{'.
func (d *decoder) object(depth int) (Value, error) {
	if depth > d.maxDepth {
		return nil, ErrTooDeep
	}
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return Object{}, nil
	}
	o := make(Object, 0, 4)
	var index map[string]int // key positions, once o is too long to scan
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("Expecting property name enclosed in double quotes")
		}
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("Expecting ':' delimiter")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		o, index = setMember(o, index, key, v)
		d.skipSpace()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				d.skipSpace()
				continue
			case '}':
				d.pos++
				return o, nil
			}
		}
		return nil, d.errorf("Expecting ',' delimiter")
	}
}

// setMember sets key in o with Python dict semantics, scanning short objects
// and indexing long ones so that many keys stay linear.
func setMember(o Object, index map[string]int, key string, v Value) (Object, map[string]int) {
	const scanLimit = 16
	if index == nil {
		for i := range o {
			if o[i].Key == key {
				o[i].Value = v
				return o, nil
			}
		}
		o = append(o, Member{Key: key, Value: v})
		if len(o) > scanLimit {
			index = make(map[string]int, 2*len(o))
			for i := range o {
				index[o[i].Key] = i
			}
		}
		return o, index
	}
	if i, ok := index[key]; ok {
		o[i].Value = v
		return o, index
	}
	index[key] = len(o)
	return append(o, Member{Key: key, Value: v}), index
}
