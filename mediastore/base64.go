package mediastore

// DecodeBase64 decodes s as Python's base64.b64decode(s) (validate=False, i.e.
// binascii.a2b_base64 in non-strict mode) does:
//   - a non-ASCII character is an error (b64decode refuses a non-ASCII str);
//   - every other character outside A-Z a-z 0-9 + / and '=' is skipped, including
//     whitespace and the urlsafe '-' and '_';
//   - '=' is ignored until at least two characters of a quad are read; the quad's
//     padding then ends the input, whatever follows;
//   - input ending inside a quad is an error ("Incorrect padding", or a single
//     leftover character); unused low bits of the last character are ignored.
//
// Every error is ErrInvalidData, and so is a result of zero bytes (a Divergence:
// Python stored an empty file).
func DecodeBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, ErrInvalidData
		}
	}
	out := make([]byte, 0, DecodedLenUpperBound(s))
	var quadPos, pads int
	var left byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			if quadPos >= 2 {
				pads++
				if quadPos+pads >= 4 { // padding complete: the rest is ignored
					quadPos = 0
					break
				}
			}
			continue
		}
		v := decodeTable[c]
		if v == 0xff {
			continue
		}
		pads = 0
		switch quadPos {
		case 0:
			left = v
		case 1:
			out = append(out, left<<2|v>>4)
			left = v & 0x0f
		case 2:
			out = append(out, left<<4|v>>2)
			left = v & 0x03
		case 3:
			out = append(out, left<<6|v)
		}
		quadPos = (quadPos + 1) % 4
	}
	if quadPos != 0 || len(out) == 0 {
		return nil, ErrInvalidData
	}
	return out, nil
}

// DecodedLenUpperBound bounds len(DecodeBase64(s)) without decoding, so that an
// oversized file can be refused first.
func DecodedLenUpperBound(s string) int {
	return len(s)/4*3 + len(s)%4*3/4
}

var decodeTable = func() (t [128]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()
