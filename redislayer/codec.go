package redislayer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/chatsidecar/sidecar/pyjson"
)

// channelKey is the reserved event key that carries the full channel name
// (a str from send) or names (a list from group_send) a message is for.
const channelKey = "__asgi_channel__"

// prefixLen is the number of random bytes channels_redis puts before every
// message so that identical payloads stay distinct sorted-set members.
const prefixLen = 12

// maxDepth bounds the nesting of decoded messages.
const maxDepth = 512

var errTooDeep = errors.New("msgpack: nesting too deep")

// serialize is channels_redis' serialize without encryption: 12 random
// bytes, then msgpack.packb(event, use_bin_type=True). With addChannel the
// event gets the reserved key set to channel (appended, or replaced in
// place if the event already has it, as a Python dict assignment does).
func serialize(event pyjson.Object, channel any, addChannel bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256)
	var prefix [prefixLen]byte
	_, _ = rand.Read(prefix[:])
	buf.Write(prefix[:])
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)

	has := true
	if addChannel {
		_, has = event.Get(channelKey)
	}
	n := len(event)
	if !has {
		n++
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return nil, err
	}
	for _, m := range event {
		if err := enc.EncodeString(m.Key); err != nil {
			return nil, err
		}
		v := m.Value
		if addChannel && m.Key == channelKey {
			v = channel
		}
		if err := encodeValue(enc, v, 0); err != nil {
			return nil, fmt.Errorf("key %q: %w", m.Key, err)
		}
	}
	if !has {
		if err := enc.EncodeString(channelKey); err != nil {
			return nil, err
		}
		if err := encodeValue(enc, channel, 0); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// encodeValue packs v as Python's msgpack.packb(use_bin_type=True) packs the
// corresponding Python value.
func encodeValue(enc *msgpack.Encoder, v any, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	switch x := v.(type) {
	case nil:
		return enc.EncodeNil()
	case bool:
		return enc.EncodeBool(x)
	case int64:
		return enc.EncodeInt(x)
	case int:
		return enc.EncodeInt(int64(x))
	case int32:
		return enc.EncodeInt(int64(x))
	case uint64:
		return enc.EncodeUint(x)
	case *big.Int:
		switch {
		case x == nil:
			return enc.EncodeNil()
		case x.IsInt64():
			return enc.EncodeInt(x.Int64())
		case x.IsUint64():
			return enc.EncodeUint(x.Uint64())
		}
		return fmt.Errorf("msgpack: int %s out of range", x)
	case float64:
		return enc.EncodeFloat64(x)
	case string:
		return enc.EncodeString(x)
	case []byte:
		return enc.EncodeBytes(x)
	case pyjson.List:
		return encodeList(enc, x, depth)
	case []any:
		return encodeList(enc, x, depth)
	case []string:
		if err := enc.EncodeArrayLen(len(x)); err != nil {
			return err
		}
		for _, s := range x {
			if err := enc.EncodeString(s); err != nil {
				return err
			}
		}
		return nil
	case pyjson.Object:
		if err := enc.EncodeMapLen(len(x)); err != nil {
			return err
		}
		for _, m := range x {
			if err := enc.EncodeString(m.Key); err != nil {
				return err
			}
			if err := encodeValue(enc, m.Value, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("msgpack: cannot pack %T", v)
}

func encodeList(enc *msgpack.Encoder, l []any, depth int) error {
	if err := enc.EncodeArrayLen(len(l)); err != nil {
		return err
	}
	for _, e := range l {
		if err := encodeValue(enc, e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// deserialize is channels_redis' deserialize without encryption: drop the
// 12-byte prefix, then msgpack.unpackb(raw=False). The top level must be a
// map (a dict).
func deserialize(b []byte) (pyjson.Object, error) {
	if len(b) < prefixLen {
		return nil, fmt.Errorf("message of %d bytes is shorter than its prefix", len(b))
	}
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	r := bytes.NewReader(b[prefixLen:])
	dec.Reset(r)
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("msgpack: %d extra bytes", r.Len())
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("message is %T, not a dict", v)
	}
	return obj, nil
}

// decodeValue reads one value as pyjson values: nil, bool, int64 or
// *big.Int, float64, string, []byte (bin), pyjson.List, pyjson.Object.
func decodeValue(dec *msgpack.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	c, err := dec.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, dec.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return dec.DecodeBool()
	case c == msgpcode.Uint64:
		u, err := dec.DecodeUint64()
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), nil
		}
		return int64(u), nil
	case msgpcode.IsFixedNum(c) || c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 ||
		c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64:
		return dec.DecodeInt64()
	case c == msgpcode.Float || c == msgpcode.Double:
		return dec.DecodeFloat64()
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(s) {
			return nil, errors.New("msgpack: str is not valid UTF-8")
		}
		return s, nil
	case msgpcode.IsBin(c):
		return dec.DecodeBytes()
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		l := make(pyjson.List, 0, min(n, 1024))
		for range n {
			e, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		return l, nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		o := make(pyjson.Object, 0, min(n, 1024))
		for range n {
			kc, err := dec.PeekCode()
			if err != nil {
				return nil, err
			}
			if !msgpcode.IsString(kc) {
				// Python gives bytes keys for bin and rejects others;
				// neither is usable as an event key.
				return nil, fmt.Errorf("msgpack: map key of type 0x%02x is not a str", kc)
			}
			k, err := dec.DecodeString()
			if err != nil {
				return nil, err
			}
			if !utf8.ValidString(k) {
				return nil, errors.New("msgpack: str key is not valid UTF-8")
			}
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			o.Set(k, v) // a repeated key keeps its first position, as in a dict
		}
		return o, nil
	}
	return nil, fmt.Errorf("msgpack: unsupported type 0x%02x (ext or reserved)", c)
}
