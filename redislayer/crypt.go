package redislayer

import (
	"crypto/sha256"
	"errors"
	"time"

	"github.com/fernet/fernet-go"

	"github.com/chatsidecar/sidecar/pyjson"
)

// fernetKeys derives channels_redis' Fernet keys: the SHA-256 of each
// key's UTF-8 bytes (make_fernet base64-encodes the same 32 bytes).
func fernetKeys(keys []string) []*fernet.Key {
	out := make([]*fernet.Key, len(keys))
	for i, k := range keys {
		fk := fernet.Key(sha256.Sum256([]byte(k)))
		out[i] = &fk
	}
	return out
}

// encode serializes a message and, with symmetric encryption keys,
// replaces the msgpack body by a Fernet token made with the first key
// (the 12-byte random prefix stays outside the token, as in Python).
func (l *Layer) encode(event pyjson.Object, channel any, addChannel bool) ([]byte, error) {
	msg, err := serialize(event, channel, addChannel)
	if err != nil || len(l.keys) == 0 {
		return msg, err
	}
	tok, err := fernet.EncryptAndSign(msg[prefixLen:], l.keys[0])
	if err != nil {
		return nil, err
	}
	return append(msg[:prefixLen:prefixLen], tok...), nil
}

// decode is deserialize, first decrypting with any of the keys; tokens
// older than Expiry + 10 s are refused, as MultiFernet.decrypt(ttl) does.
func (l *Layer) decode(b []byte) (pyjson.Object, error) {
	if len(l.keys) == 0 {
		return deserialize(b)
	}
	if len(b) < prefixLen {
		return nil, errors.New("message shorter than its prefix")
	}
	ttl := time.Duration(l.expirySec)*time.Second + 10*time.Second
	body := fernet.VerifyAndDecrypt(b[prefixLen:], ttl, l.keys)
	if body == nil {
		return nil, errors.New("fernet token invalid, expired or made with another key")
	}
	return deserialize(append(make([]byte, prefixLen, prefixLen+len(body)), body...))
}
