package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Token is what Mint signs: SimpleJWT's claims, in SimpleJWT's order
// (token_type, exp, iat, jti, user_id). The sidecar never mints tokens in
// production (Django does); the demo, the load tool and the tests do.
type Token struct {
	Type      string    // token_type: "access" or "refresh"; "" leaves the claim out
	UserID    any       // user_id, normally an int64; nil leaves the claim out
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
}

// Mint returns tok as an HS256 JWT byte for byte in the shape SimpleJWT's
// RefreshToken.for_user(user) and its access_token have: PyJWT's header
// {"alg":"HS256","typ":"JWT"}, the claims as compact JSON with a fresh jti
// (uuid4().hex), signed with secret.
func Mint(secret string, tok Token) string {
	var b strings.Builder
	b.WriteByte('{')
	sep := ""
	claim := func(name, value string) {
		b.WriteString(sep + `"` + name + `":` + value)
		sep = ","
	}
	if tok.Type != "" {
		claim("token_type", strconv.Quote(tok.Type))
	}
	claim("exp", strconv.FormatInt(tok.ExpiresAt.Unix(), 10))
	claim("iat", strconv.FormatInt(tok.IssuedAt.Unix(), 10))
	claim("jti", `"`+newJTI()+`"`)
	if tok.UserID != nil {
		v, err := json.Marshal(tok.UserID)
		if err != nil {
			panic("auth: mint: user id: " + err.Error()) // only tests pass odd ids
		}
		claim("user_id", string(v))
	}
	b.WriteByte('}')
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(b.String()))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// MintAccess returns an access token for userID valid for lifetime from now.
func MintAccess(secret string, userID int64, now time.Time, lifetime time.Duration) string {
	return Mint(secret, Token{Type: "access", UserID: userID, IssuedAt: now, ExpiresAt: now.Add(lifetime)})
}

// newJTI is uuid4().hex.
func newJTI() string {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	jti[6] = jti[6]&0x0f | 0x40 // a version 4 UUID, as uuid4() is
	jti[8] = jti[8]&0x3f | 0x80
	return hex.EncodeToString(jti[:])
}
