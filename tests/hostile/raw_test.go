package hostile

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// rawConn is a WebSocket client written by hand, for what a well-behaved
// library will not do: handshake and never read, trickle fragments, send
// invalid UTF-8, pick a zero masking key.
type rawConn struct {
	net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// rawHandshake opens a TCP connection to addr, sends the upgrade request
// for target (path and query) with the extra header lines (each ending in
// \r\n) and reads the response. The connection is returned whatever the
// status; its response body is not read.
func rawHandshake(addr, target, extra string) (*rawConn, *http.Response, error) {
	c, err := net.DialTimeout("tcp", addr, frameWait)
	if err != nil {
		return nil, nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	_ = c.SetDeadline(time.Now().Add(frameWait))
	// The request is written while the response is read: a server that
	// refuses a huge request answers before reading all of it.
	werr := make(chan error, 1)
	go func() { _, err := io.WriteString(c, req); werr <- err }()
	rc := &rawConn{Conn: c, br: bufio.NewReaderSize(c, 4096)}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("read handshake response: %w (write: %v)", err, <-werr)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if err := <-werr; err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	_ = c.SetDeadline(time.Time{})
	return rc, resp, nil
}

// writeFrame writes one frame. The masking key is zero, which RFC 6455
// allows the client to choose (it is meant to be unpredictable, which the
// server cannot check), so the masked payload is the payload itself and a
// 16 MiB frame goes out without being copied.
func (r *rawConn) writeFrame(fin bool, op byte, payload []byte) error {
	var h [14]byte
	h[0] = op
	if fin {
		h[0] |= 0x80
	}
	n := len(payload)
	hl := 2
	switch {
	case n < 126:
		h[1] = 0x80 | byte(n)
	case n < 1<<16:
		h[1] = 0x80 | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		hl = 4
	default:
		h[1] = 0x80 | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		hl = 10
	}
	hl += 4 // the zero masking key
	r.wmu.Lock()
	defer r.wmu.Unlock()
	bufs := net.Buffers{h[:hl], payload}
	_, err := bufs.WriteTo(r.Conn)
	return err
}

// readHeader reads the header of the server's next frame.
func (r *rawConn) readHeader() (fin bool, op byte, n int64, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return false, 0, 0, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 != 0 {
		return false, 0, 0, errors.New("server frame is masked")
	}
	n = int64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return false, 0, 0, err
		}
		n = int64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return false, 0, 0, err
		}
		n = int64(binary.BigEndian.Uint64(b[:]))
	}
	return fin, op, n, nil
}

// maxMessage bounds a message from the server (a 40 MiB history and more).
const maxMessage = 64 << 20

// errClosed is the end of a connection with a close frame.
type errClosed struct{ code int }

func (e errClosed) Error() string { return fmt.Sprintf("close frame %d", e.code) }

// readMessage reads the next message, joining its fragments; pings are
// answered and counted in pings (when not nil). A close frame ends it with
// errClosed; the end of the stream with io.EOF, io.ErrUnexpectedEOF (in
// the middle of a frame) or the socket's error.
func (r *rawConn) readMessage(pings *int) ([]byte, error) { return r.readMessageInto(nil, pings) }

// readMessageInto is readMessage into msg's array, grown as needed.
func (r *rawConn) readMessageInto(msg []byte, pings *int) ([]byte, error) {
	msg = msg[:0]
	for {
		fin, op, n, err := r.readHeader()
		if err != nil {
			return nil, err
		}
		if op >= opClose { // a control frame: at most 125 bytes
			if n > 125 {
				return nil, fmt.Errorf("control frame of %d bytes", n)
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(r.br, payload); err != nil {
				return nil, err
			}
			switch op {
			case opPing:
				if pings != nil {
					*pings++
				}
				if err := r.writeFrame(true, opPong, payload); err != nil {
					return nil, err
				}
			case opClose:
				code := 1005
				if len(payload) >= 2 {
					code = int(binary.BigEndian.Uint16(payload))
				}
				return nil, errClosed{code}
			}
			continue
		}
		if int64(len(msg))+n > maxMessage {
			return nil, fmt.Errorf("server message over %d bytes", maxMessage)
		}
		msg = slices.Grow(msg, int(n))
		if _, err := io.ReadFull(r.br, msg[len(msg):len(msg)+int(n)]); err != nil {
			return nil, err
		}
		msg = msg[:len(msg)+int(n)]
		if fin {
			return msg, nil
		}
	}
}

// readConnectFrames reads the three frames a chat connection starts with.
func (r *rawConn) readConnectFrames() error {
	_ = r.SetReadDeadline(time.Now().Add(frameWait))
	defer r.SetReadDeadline(time.Time{})
	for _, want := range []string{"connection_established", "api_info", "conversation_history"} {
		msg, err := r.readMessage(nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", want, err)
		}
		if got := frameType(msg); got != want {
			return fmt.Errorf("frame %s, want %s", got, want)
		}
	}
	return nil
}
