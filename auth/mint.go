package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// MintAccess returns an HS256 access token byte for byte in the shape
// SimpleJWT's RefreshToken.for_user(user).access_token has: PyJWT's header
// {"alg":"HS256","typ":"JWT"}, then the claims token_type, exp, iat, jti
// (uuid4().hex) and user_id in that order, as compact JSON, signed with
// secret. The sidecar never mints tokens in production (Django does); the
// demo and the load tool do.
func MintAccess(secret string, userID int64, now time.Time, lifetime time.Duration) string {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	jti[6] = jti[6]&0x0f | 0x40 // a version 4 UUID, as uuid4() is
	jti[8] = jti[8]&0x3f | 0x80
	payload := fmt.Sprintf(`{"token_type":"access","exp":%d,"iat":%d,"jti":"%s","user_id":%d}`,
		now.Add(lifetime).Unix(), now.Unix(), hex.EncodeToString(jti[:]), userID)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
