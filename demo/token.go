package demo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"
)

// secretKeyChars is what Django's get_random_secret_key draws from.
const secretKeyChars = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)"

// newSecretKey returns a SECRET_KEY as `django-admin startproject` writes one.
func newSecretKey() string {
	return "django-insecure-" + randomString(50, secretKeyChars)
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// jwtHeader is PyJWT's header for HS256, keys sorted as PyJWT writes them.
const jwtHeader = `{"alg":"HS256","typ":"JWT"}`

// mintAccess returns an HS256 access token byte for byte in the shape
// SimpleJWT's RefreshToken.for_user(user).access_token has: the claims
// token_type, exp, iat, jti (uuid4().hex), user_id in that order, written by
// PyJWT's compact json.dumps, signed with secret.
func mintAccess(secret string, userID int64, now time.Time, lifetime time.Duration) string {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		panic(err)
	}
	jti[6] = jti[6]&0x0f | 0x40 // a version 4 UUID, as uuid4() is
	jti[8] = jti[8]&0x3f | 0x80
	payload := fmt.Sprintf(`{"token_type":"access","exp":%d,"iat":%d,"jti":"%s","user_id":%d}`,
		now.Add(lifetime).Unix(), now.Unix(), hex.EncodeToString(jti[:]), userID)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(jwtHeader)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
