package histcache

import "time"

// encList is a history's encoded JSON list, newest first, without its
// opening "[": body ends buf, and the bytes of buf before body are
// headroom where newer messages are written in front of it. Nothing handed
// out is ever written again: prepend writes only before the body, build
// makes a new buf.
type encList struct{ buf, body []byte }

// minHeadroom is the least room left in front of a body for new messages.
const minHeadroom = 2048

// build writes the list of n messages anew, json(i) the i-th newest, with
// room for a quarter more in front: new messages are prepended without a
// rebuild until it is used up.
func (l *encList) build(n int, json func(i int) []byte) {
	size := 1
	for i := range n {
		size += len(json(i)) + 2
	}
	headroom := max(size/4, minHeadroom)
	buf := make([]byte, headroom, headroom+size)
	for i := range n {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		buf = append(buf, json(i)...)
	}
	buf = append(buf, ']')
	l.buf, l.body = buf, buf[headroom:]
}

// prepend writes newer messages, newest first, in front of the body when
// there is one and its headroom has room, and reports whether it did.
func (l *encList) prepend(jsons ...[]byte) bool {
	if l.body == nil {
		return false
	}
	empty := len(l.body) == 1 // "]": no separator before it
	size := 0
	for _, j := range jsons {
		size += len(j) + 2
	}
	if empty {
		size -= 2
	}
	start := len(l.buf) - len(l.body) - size
	if start < 0 {
		return false
	}
	w := start
	for i, j := range jsons {
		w += copy(l.buf[w:], j)
		if i < len(jsons)-1 || !empty {
			w += copy(l.buf[w:], ", ")
		}
	}
	l.body = l.buf[start:]
	return true
}

// older is the history's order, oldest first: created_at, then id.
func older(aAt time.Time, aID int64, bAt time.Time, bID int64) bool {
	if !aAt.Equal(bAt) {
		return aAt.Before(bAt)
	}
	return aID < bID
}
