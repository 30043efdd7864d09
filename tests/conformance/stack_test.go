package conformance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

const (
	secretKey  = "conformance-secret-key-not-for-production"
	publicBase = "https://chat.example.com"
)

// signToken makes an HS256 JWT with SECRET_KEY for the odd-token cases that
// SimpleJWT will not mint (no user id claim, a missing user, expired, bad
// signature). claims are added to token_type/exp/iat/jti.
func signToken(claims map[string]any, key string) string {
	now := time.Now().Unix()
	jti := make([]byte, 16)
	rand.Read(jti)
	full := map[string]any{"token_type": "access", "exp": now + 3600, "iat": now, "jti": hex.EncodeToString(jti)}
	for k, v := range claims {
		if v == nil {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	var parts []string
	for _, k := range []string{"token_type", "exp", "iat", "jti", "user_id"} {
		if v, ok := full[k]; ok {
			switch x := v.(type) {
			case string:
				parts = append(parts, fmt.Sprintf("%q:%q", k, x))
			default:
				parts = append(parts, fmt.Sprintf("%q:%v", k, x))
			}
		}
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte("{"+strings.Join(parts, ",")+"}"))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
