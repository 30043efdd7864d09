package redislayer

import (
	"crypto/rand"
	"encoding/hex"
	"hash/crc32"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxNameLength is Channels' MAX_NAME_LENGTH: names must be shorter.
const maxNameLength = 100

// validGroup is Channels' group name rule (^[a-zA-Z\d\-_.]+$), without
// Python's quirks (Unicode digits, a trailing newline), which are rejected.
var validGroup = regexp.MustCompile(`^[A-Za-z0-9._-]{1,99}$`)

// validChannel is Channels' channel name rule
// (^[a-zA-Z\d\-_.]+(\![\d\w\-_.]*)?$); after the "!" Python's \w is
// Unicode-aware, hence the letter and number classes.
var validChannel = regexp.MustCompile(`^[A-Za-z0-9._-]+(![\p{L}\p{N}_.-]*)?$`)

func validGroupName(name string) bool {
	return validGroup.MatchString(name)
}

func validChannelName(name string) bool {
	return utf8.RuneCountInString(name) < maxNameLength && validChannel.MatchString(name)
}

// nonLocalName is channels_redis' non_local_name: the name up to and
// including the first "!", or the whole name when it has none.
func nonLocalName(name string) string {
	if i := strings.IndexByte(name, '!'); i >= 0 {
		return name[:i+1]
	}
	return name
}

// consistentHash is channels_redis.utils._consistent_hash: the IEEE CRC-32
// of the UTF-8 value, low 12 bits, scaled to the ring with float division.
func consistentHash(value string, ringSize int) int {
	if ringSize == 1 {
		return 0
	}
	v := crc32.ChecksumIEEE([]byte(value)) & 0xfff
	return int(float64(v) / (4096 / float64(ringSize)))
}

// uuid4Hex is Python's uuid.uuid4().hex: 32 lowercase hex digits of a
// random version 4, RFC 4122 variant UUID.
func uuid4Hex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}
