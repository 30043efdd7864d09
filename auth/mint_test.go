package auth

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMintAccess(t *testing.T) {
	now := time.Unix(1795647263, 0)
	tok := MintAccess("s3cret", 42, now, 5*time.Minute)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" {
		t.Fatalf("token %s: want PyJWT's HS256 header", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^\{"token_type":"access","exp":1795647563,"iat":1795647263,"jti":"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}","user_id":42\}$`)
	if !want.Match(payload) {
		t.Errorf("payload %s: not SimpleJWT's shape", payload)
	}
	v, err := NewVerifier(simpleJWT(Config{SigningKey: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now.Add(time.Minute) }
	if id, err := v.Verify(tok); err != nil || id != 42 {
		t.Errorf("Verify = %d, %v", id, err)
	}
}
