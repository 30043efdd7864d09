package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	secret = "django-insecure-k3y$with^odd*chars(é)" // a SECRET_KEY; HMAC key = its UTF-8 bytes
	now    = 1795647300                              // the test clock, in seconds
	jti    = "1cc9b8ea28fa42e88559c7e527f36bda"
)

var clock = time.Unix(now, 0)

// del, as a claim value, removes the claim.
var del = new(int)

// keys is generated once: RSA and one ECDSA key per curve.
var keys = sync.OnceValue(func() (k struct {
	rsa *rsa.PrivateKey
	ec  map[string]*ecdsa.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	k.ec = map[string]*ecdsa.PrivateKey{}
	for alg, c := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		if k.ec[alg], err = ecdsa.GenerateKey(c, rand.Reader); err != nil {
			panic(err)
		}
	}
	return k
})

func pemOf(t testing.TB, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pubPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

// claims returns SimpleJWT's access-token payload at the test clock, with the
// edits (name, value pairs) applied; a json.RawMessage value goes in verbatim.
func claims(edits ...any) string {
	c := map[string]any{"token_type": "access", "exp": now + 300, "iat": now, "jti": jti, "user_id": 1}
	for i := 0; i < len(edits); i += 2 {
		if edits[i+1] == del {
			delete(c, edits[i].(string))
		} else {
			c[edits[i].(string)] = edits[i+1]
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sign builds header.payload.signature with alg's method and key over the given JSON texts.
func sign(t testing.TB, alg string, key any, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := jwt.GetSigningMethod(alg).Sign(input, key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

func hs256(t testing.TB, payload string) string {
	return sign(t, "HS256", []byte(secret), `{"alg":"HS256","typ":"JWT"}`, payload)
}

// simpleJWT fills what cfg leaves empty with SimpleJWT's defaults.
func simpleJWT(cfg Config) Config {
	if cfg.Algorithm == "" {
		cfg.Algorithm = "HS256"
	}
	if cfg.UserIDClaim == "" {
		cfg.UserIDClaim = "user_id"
	}
	if cfg.TokenTypeClaim == "" {
		cfg.TokenTypeClaim = "token_type"
	}
	return cfg
}

func newVerifier(t testing.TB, cfg Config, at time.Time) *Verifier {
	t.Helper()
	v, err := NewVerifier(simpleJWT(cfg))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	v.now = func() time.Time { return at }
	return v
}

type verifyCase struct {
	name  string
	cfg   Config // Algorithm "" means HS256 with secret
	at    time.Time
	token string
	want  int64 // when err is nil
	err   error // nil: accepted
}

func runCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Algorithm == "" && cfg.SigningKey == "" {
				cfg.SigningKey = secret
			}
			at := tc.at
			if at.IsZero() {
				at = clock
			}
			got, err := newVerifier(t, cfg, at).Verify(tc.token)
			if tc.err == nil {
				if err != nil || got != tc.want {
					t.Fatalf("Verify = %d, %v; want %d, nil", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %d, %v; want error %v", got, err, tc.err)
			}
			if got != 0 {
				t.Errorf("Verify returned id %d with an error", got)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 3 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains part of the token", err)
				}
			}
		})
	}
}

// TestSimpleJWTBytes builds a token exactly as PyJWT 2.6 encodes SimpleJWT's
// access token (sorted compact header, payload in insertion order, unpadded
// base64url, HMAC-SHA256 over the UTF-8 SECRET_KEY), without golang-jwt.
func TestSimpleJWTBytes(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	build := func(typ string) string {
		header := `{"alg":"HS256","typ":"JWT"}`
		payload := fmt.Sprintf(`{"token_type":"%s","exp":%d,"iat":%d,"jti":"%s","user_id":1}`, typ, now+300, now, jti)
		input := enc([]byte(header)) + "." + enc([]byte(payload))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(input))
		return input + "." + enc(mac.Sum(nil))
	}
	access := build("access")
	if h, _, _ := strings.Cut(access, "."); h != "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" {
		t.Fatalf("header segment %s is not PyJWT's", h)
	}
	runCases(t, []verifyCase{
		{name: "access", token: access, want: 1},
		{name: "refresh", token: build("refresh"), err: ErrWrongType},
		{name: "other SECRET_KEY", cfg: Config{SigningKey: secret + "x"}, token: access, err: ErrInvalidToken},
		{name: "ASCII-folded SECRET_KEY", cfg: Config{SigningKey: strings.ReplaceAll(secret, "é", "e")}, token: access, err: ErrInvalidToken},
		{name: "one second before exp", at: clock.Add(299 * time.Second), token: access, want: 1},
		{name: "at exp", at: clock.Add(300 * time.Second), token: access, err: ErrExpired},
	})
}

func TestAlgorithms(t *testing.T) {
	k := keys()
	header := func(alg string) string { return `{"alg":"` + alg + `","typ":"JWT"}` }
	var cases []verifyCase
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		cfg := Config{Algorithm: alg, SigningKey: secret}
		cases = append(cases,
			verifyCase{name: alg, cfg: cfg, token: sign(t, alg, []byte(secret), header(alg), claims()), want: 1},
			verifyCase{name: alg + " wrong key", cfg: cfg, token: sign(t, alg, []byte("other"), header(alg), claims()), err: ErrInvalidToken},
		)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := pubPEM(t, &k.rsa.PublicKey)
	for _, alg := range []string{"RS256", "RS384", "RS512"} {
		cfg := Config{Algorithm: alg, VerifyingKey: rsaPub}
		cases = append(cases,
			verifyCase{name: alg, cfg: cfg, token: sign(t, alg, k.rsa, header(alg), claims()), want: 1},
			verifyCase{name: alg + " wrong key", cfg: cfg, token: sign(t, alg, otherRSA, header(alg), claims()), err: ErrInvalidToken},
		)
	}
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		other, err := ecdsa.GenerateKey(k.ec[alg].Curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Algorithm: alg, VerifyingKey: pubPEM(t, &k.ec[alg].PublicKey)}
		cases = append(cases,
			verifyCase{name: alg, cfg: cfg, token: sign(t, alg, k.ec[alg], header(alg), claims()), want: 1},
			verifyCase{name: alg + " wrong key", cfg: cfg, token: sign(t, alg, other, header(alg), claims()), err: ErrInvalidToken},
		)
	}
	rs256 := Config{Algorithm: "RS256", VerifyingKey: rsaPub}
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(header("none"))) + "." + enc([]byte(claims())) + "."
	cases = append(cases,
		verifyCase{name: "alg none under HS256", token: unsigned, err: ErrInvalidToken},
		verifyCase{name: "alg none under RS256", cfg: rs256, token: unsigned, err: ErrInvalidToken},
		verifyCase{name: "alg none, none signed", token: sign(t, "none", jwt.UnsafeAllowNoneSignatureType, header("none"), claims()), err: ErrInvalidToken},
		// HMAC-with-public-key confusion: the public PEM is known to everyone.
		verifyCase{name: "HS256 keyed with the RSA public PEM under RS256", cfg: rs256,
			token: sign(t, "HS256", []byte(rsaPub), header("HS256"), claims()), err: ErrInvalidToken},
		verifyCase{name: "HS512 under HS256", token: sign(t, "HS512", []byte(secret), header("HS512"), claims()), err: ErrInvalidToken},
		verifyCase{name: "HS256 under HS512", cfg: Config{Algorithm: "HS512", SigningKey: secret}, token: hs256(t, claims()), err: ErrInvalidToken},
		verifyCase{name: "RS512 under RS256", cfg: rs256, token: sign(t, "RS512", k.rsa, header("RS512"), claims()), err: ErrInvalidToken},
		verifyCase{name: "RS256 under HS256", token: sign(t, "RS256", k.rsa, header("RS256"), claims()), err: ErrInvalidToken},
		verifyCase{name: "ES256 token relabelled ES384", cfg: Config{Algorithm: "ES384", VerifyingKey: pubPEM(t, &k.ec["ES384"].PublicKey)},
			token: sign(t, "ES256", k.ec["ES256"], header("ES384"), claims()), err: ErrInvalidToken},
		verifyCase{name: "lowercase alg", token: sign(t, "HS256", []byte(secret), header("hs256"), claims()), err: ErrInvalidToken},
		verifyCase{name: "no alg", token: sign(t, "HS256", []byte(secret), `{"typ":"JWT"}`, claims()), err: ErrInvalidToken},
		verifyCase{name: "alg not a string", token: sign(t, "HS256", []byte(secret), `{"alg":1}`, claims()), err: ErrInvalidToken},
		verifyCase{name: "b64 false", token: sign(t, "HS256", []byte(secret), `{"alg":"HS256","b64":false}`, claims()), err: ErrInvalidToken},
		verifyCase{name: "extra header fields", token: sign(t, "HS256", []byte(secret), `{"alg":"HS256","kid":"k1","typ":"at+jwt"}`, claims()), want: 1},
		verifyCase{name: "RS256 with PKCS1 public key", cfg: Config{Algorithm: "RS256", VerifyingKey: pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey))},
			token: sign(t, "RS256", k.rsa, header("RS256"), claims()), want: 1},
		verifyCase{name: "RS256 with private key PEM", cfg: Config{Algorithm: "RS256", VerifyingKey: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa))},
			token: sign(t, "RS256", k.rsa, header("RS256"), claims()), want: 1},
	)
	runCases(t, cases)
}

func TestClaims(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	leeway := Config{Leeway: 10 * time.Second}
	aud := Config{Audience: "chat"}
	iss := Config{Issuer: "https://example.org"}
	runCases(t, []verifyCase{
		{name: "valid", token: hs256(t, claims()), want: 1},
		{name: "other user", token: hs256(t, claims("user_id", 42)), want: 42},

		// exp: required, expired when exp <= now - leeway.
		{name: "no exp", token: hs256(t, claims("exp", del)), err: ErrInvalidToken},
		{name: "exp now", token: hs256(t, claims("exp", now)), err: ErrExpired},
		{name: "exp in a second", token: hs256(t, claims("exp", now+1)), want: 1},
		{name: "exp passed", token: hs256(t, claims("exp", now-1)), err: ErrExpired},
		{name: "exp passed inside leeway", cfg: leeway, token: hs256(t, claims("exp", now-9)), want: 1},
		{name: "exp at leeway edge", cfg: leeway, token: hs256(t, claims("exp", now-10)), err: ErrExpired},
		{name: "exp passed beyond leeway", cfg: leeway, token: hs256(t, claims("exp", now-11)), err: ErrExpired},
		{name: "exp half a second ahead", at: clock.Add(500 * time.Millisecond), token: hs256(t, claims("exp", now+1)), want: 1},
		{name: "fractional exp truncated like int()", at: clock.Add(500 * time.Millisecond), token: hs256(t, claims("exp", raw("1795647300.7"))), err: ErrExpired},
		{name: "float exp", token: hs256(t, claims("exp", raw("1795647600.0"))), want: 1},
		{name: "exp as string", token: hs256(t, claims("exp", "1795647600")), err: ErrInvalidToken},
		{name: "exp as bool", token: hs256(t, claims("exp", true)), err: ErrInvalidToken},
		{name: "exp null", token: hs256(t, claims("exp", nil)), err: ErrInvalidToken},
		{name: "exp after year 9999", token: hs256(t, claims("exp", int64(maxExp))), err: ErrInvalidToken},
		{name: "exp 1e400", token: hs256(t, claims("exp", raw("1e400"))), err: ErrInvalidToken},

		// nbf and iat: optional, not after now + leeway.
		{name: "no iat", token: hs256(t, claims("iat", del)), want: 1},
		{name: "iat in the future", token: hs256(t, claims("iat", now+1)), err: ErrInvalidToken},
		{name: "iat in the future inside leeway", cfg: leeway, token: hs256(t, claims("iat", now+10)), want: 1},
		{name: "iat in the future beyond leeway", cfg: leeway, token: hs256(t, claims("iat", now+11)), err: ErrInvalidToken},
		{name: "fractional iat in the future", token: hs256(t, claims("iat", raw("1795647300.5"))), err: ErrInvalidToken},
		{name: "iat as string", token: hs256(t, claims("iat", "x")), err: ErrInvalidToken},
		{name: "nbf past", token: hs256(t, claims("nbf", now-60)), want: 1},
		{name: "nbf now", token: hs256(t, claims("nbf", now)), want: 1},
		{name: "nbf in the future", token: hs256(t, claims("nbf", now+1)), err: ErrInvalidToken},
		{name: "nbf in the future inside leeway", cfg: leeway, token: hs256(t, claims("nbf", now+10)), want: 1},
		{name: "nbf in the future beyond leeway", cfg: leeway, token: hs256(t, claims("nbf", now+11)), err: ErrInvalidToken},
		{name: "nbf as string", token: hs256(t, claims("nbf", "soon")), err: ErrInvalidToken},

		// token_type and jti.
		{name: "refresh token", token: hs256(t, claims("token_type", "refresh", "exp", now+86400)), err: ErrWrongType},
		{name: "sliding token", token: hs256(t, claims("token_type", "sliding")), err: ErrWrongType},
		{name: "no token_type", token: hs256(t, claims("token_type", del)), err: ErrWrongType},
		{name: "token_type not a string", token: hs256(t, claims("token_type", 1)), err: ErrWrongType},
		{name: "custom token type claim", cfg: Config{TokenTypeClaim: "typ"}, token: hs256(t, claims("token_type", del, "typ", "access")), want: 1},
		{name: "custom token type claim missing", cfg: Config{TokenTypeClaim: "typ"}, token: hs256(t, claims()), err: ErrWrongType},
		{name: "no jti", token: hs256(t, claims("jti", del)), err: ErrInvalidToken},
		{name: "jti null is present", token: hs256(t, claims("jti", nil)), want: 1},

		// user id.
		{name: "no user_id", token: hs256(t, claims("user_id", del)), err: ErrNoUserID},
		{name: "user_id numeric string", token: hs256(t, claims("user_id", "12")), want: 12},
		{name: "user_id numeric string, leading zero", token: hs256(t, claims("user_id", "012")), want: 12},
		{name: "user_id abc", token: hs256(t, claims("user_id", "abc")), err: ErrNoUserID},
		{name: "user_id 1.5", token: hs256(t, claims("user_id", 1.5)), err: ErrNoUserID},
		{name: "user_id true", token: hs256(t, claims("user_id", true)), err: ErrNoUserID},
		{name: "user_id null", token: hs256(t, claims("user_id", nil)), err: ErrNoUserID},
		{name: "user_id object", token: hs256(t, claims("user_id", map[string]int{"id": 1})), err: ErrNoUserID},
		{name: "user_id empty string", token: hs256(t, claims("user_id", "")), err: ErrNoUserID},
		{name: "user_id signed string", token: hs256(t, claims("user_id", "+12")), err: ErrNoUserID},
		{name: "user_id spaced string", token: hs256(t, claims("user_id", " 12")), err: ErrNoUserID},
		{name: "user_id 1.0", token: hs256(t, claims("user_id", raw("1.0"))), want: 1},
		{name: "user_id 1e2", token: hs256(t, claims("user_id", raw("1e2"))), want: 100},
		{name: "user_id max int64", token: hs256(t, claims("user_id", raw("9223372036854775807"))), want: 9223372036854775807},
		{name: "user_id beyond int64", token: hs256(t, claims("user_id", raw("9223372036854775808"))), err: ErrNoUserID},
		{name: "user_id string beyond int64", token: hs256(t, claims("user_id", "9223372036854775808")), err: ErrNoUserID},
		{name: "user_id 1e19", token: hs256(t, claims("user_id", raw("1e19"))), err: ErrNoUserID},
		{name: "custom user id claim", cfg: Config{UserIDClaim: "uid"}, token: hs256(t, claims("user_id", del, "uid", 7)), want: 7},
		{name: "custom user id claim missing", cfg: Config{UserIDClaim: "uid"}, token: hs256(t, claims()), err: ErrNoUserID},

		// aud and iss.
		{name: "aud ignored when not configured", token: hs256(t, claims("aud", "elsewhere")), want: 1},
		{name: "odd aud ignored when not configured", token: hs256(t, claims("aud", 5)), want: 1},
		{name: "aud matches", cfg: aud, token: hs256(t, claims("aud", "chat")), want: 1},
		{name: "aud list contains", cfg: aud, token: hs256(t, claims("aud", []string{"api", "chat"})), want: 1},
		{name: "aud missing", cfg: aud, token: hs256(t, claims()), err: ErrInvalidToken},
		{name: "aud empty", cfg: aud, token: hs256(t, claims("aud", "")), err: ErrInvalidToken},
		{name: "aud mismatched", cfg: aud, token: hs256(t, claims("aud", "api")), err: ErrInvalidToken},
		{name: "aud list without it", cfg: aud, token: hs256(t, claims("aud", []string{"api"})), err: ErrInvalidToken},
		{name: "aud list with a non-string", cfg: aud, token: hs256(t, claims("aud", []any{1, "chat"})), err: ErrInvalidToken},
		{name: "aud number", cfg: aud, token: hs256(t, claims("aud", 5)), err: ErrInvalidToken},
		{name: "iss ignored when not configured", token: hs256(t, claims("iss", "elsewhere")), want: 1},
		{name: "iss matches", cfg: iss, token: hs256(t, claims("iss", "https://example.org")), want: 1},
		{name: "iss missing", cfg: iss, token: hs256(t, claims()), err: ErrInvalidToken},
		{name: "iss mismatched", cfg: iss, token: hs256(t, claims("iss", "https://example.org/")), err: ErrInvalidToken},
		{name: "iss not a string", cfg: iss, token: hs256(t, claims("iss", []string{"https://example.org"})), err: ErrInvalidToken},
	})
}

func TestGarbage(t *testing.T) {
	good := hs256(t, claims())
	h, rest, _ := strings.Cut(good, ".")
	p, s, _ := strings.Cut(rest, ".")
	runCases(t, []verifyCase{
		{name: "empty", token: "", err: ErrInvalidToken},
		{name: "word", token: "garbage", err: ErrInvalidToken},
		{name: "dots", token: "..", err: ErrInvalidToken},
		{name: "two segments", token: h + "." + p, err: ErrInvalidToken},
		{name: "four segments", token: good + "." + s, err: ErrInvalidToken},
		{name: "bad base64", token: h + ".!!!." + s, err: ErrInvalidToken},
		{name: "padded signature", token: good + "=", err: ErrInvalidToken},
		{name: "trailing space", token: good + " ", err: ErrInvalidToken},
		{name: "Bearer prefix", token: "Bearer " + good, err: ErrInvalidToken},
		{name: "tampered payload", token: h + "." + base64.RawURLEncoding.EncodeToString([]byte(claims("user_id", 2))) + "." + s, err: ErrInvalidToken},
		{name: "truncated signature", token: good[:len(good)-2], err: ErrInvalidToken},
		{name: "signed non-JSON payload", token: hs256(t, "not json"), err: ErrInvalidToken},
		{name: "signed array payload", token: hs256(t, "[1,2]"), err: ErrInvalidToken},
		{name: "signed null payload", token: hs256(t, "null"), err: ErrInvalidToken},
		{name: "signed empty object", token: hs256(t, "{}"), err: ErrInvalidToken},
	})
}

// NewVerifier takes no defaults of its own: the configuration has them.
func TestNewVerifierNeedsClaimNames(t *testing.T) {
	for _, cfg := range []Config{
		{Algorithm: "HS256", SigningKey: secret, TokenTypeClaim: "token_type"},
		{Algorithm: "HS256", SigningKey: secret, UserIDClaim: "user_id"},
	} {
		if _, err := NewVerifier(cfg); err == nil || !strings.Contains(err.Error(), "SIMPLE_JWT_") {
			t.Errorf("NewVerifier(%+v) error = %v; want one naming the setting", cfg, err)
		}
	}
}

func TestNewVerifier(t *testing.T) {
	k := keys()
	rsaPub := pubPEM(t, &k.rsa.PublicKey)
	p256 := pubPEM(t, &k.ec["ES256"].PublicKey)
	// A 512-bit modulus: Go refuses to verify with it, so the config must fail loudly.
	small := pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511).Or(new(big.Int).Lsh(big.NewInt(1), 511), big.NewInt(1)), E: 65537}))
	for _, tc := range []struct {
		name    string
		cfg     Config
		setting string // "" means accepted
	}{
		{"HS256", Config{SigningKey: secret}, ""},
		{"HS512", Config{Algorithm: "HS512", SigningKey: secret}, ""},
		{"HS ignores verifying key", Config{SigningKey: secret, VerifyingKey: "junk"}, ""},
		{"RS256", Config{Algorithm: "RS256", VerifyingKey: rsaPub}, ""},
		{"ES256", Config{Algorithm: "ES256", VerifyingKey: p256}, ""},
		{"unknown algorithm", Config{Algorithm: "HS1024", SigningKey: secret}, "SIMPLE_JWT_ALGORITHM"},
		{"none", Config{Algorithm: "none", SigningKey: secret}, "SIMPLE_JWT_ALGORITHM"},
		{"lowercase", Config{Algorithm: "hs256", SigningKey: secret}, "SIMPLE_JWT_ALGORITHM"},
		{"PS256 is not in SimpleJWT's list", Config{Algorithm: "PS256", VerifyingKey: rsaPub}, "SIMPLE_JWT_ALGORITHM"},
		{"empty HMAC key", Config{}, "SIMPLE_JWT_SIGNING_KEY"},
		{"PEM as HMAC key", Config{SigningKey: rsaPub}, "SIMPLE_JWT_SIGNING_KEY"},
		{"SSH key as HMAC key", Config{SigningKey: "ssh-rsa AAAAB3NzaC1yc2E user@host"}, "SIMPLE_JWT_SIGNING_KEY"},
		{"RS256 without key", Config{Algorithm: "RS256", SigningKey: secret}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"RS256 with junk", Config{Algorithm: "RS256", VerifyingKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"RS256 with an EC key", Config{Algorithm: "RS256", VerifyingKey: p256}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"RS256 with a 512-bit key", Config{Algorithm: "RS256", VerifyingKey: small}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"ES256 without key", Config{Algorithm: "ES256"}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"ES256 with an RSA key", Config{Algorithm: "ES256", VerifyingKey: rsaPub}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"ES384 with a P-256 key", Config{Algorithm: "ES384", VerifyingKey: p256}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"negative leeway", Config{SigningKey: secret, Leeway: -time.Second}, "SIMPLE_JWT_LEEWAY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(simpleJWT(tc.cfg))
			if tc.setting == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("NewVerifier error = %v; want one naming %s", err, tc.setting)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	good := hs256(f, claims())
	f.Add(good, []byte(claims()))
	f.Add("", []byte(claims("user_id", "12", "aud", []any{"chat", 1})))
	f.Add("a.b.c", []byte(`{"exp":1e400,"nbf":-1e400,"iat":"x","user_id":9223372036854775808}`))
	f.Add(good+"."+good, []byte(`{"token_type":"access","exp":1795647600.5,"jti":null,"user_id":1e2}`))
	f.Add(strings.Repeat(".", 5), []byte(`[]`))
	v := newVerifier(f, Config{SigningKey: secret, Audience: "chat", Leeway: time.Second}, clock)
	check := func(t *testing.T, token string) {
		id, err := v.Verify(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || id != 0 {
				t.Fatalf("Verify = %d, %v: not a wrapped ErrInvalidToken", id, err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error %q contains the token", err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, token string, payload []byte) {
		check(t, token)                                                                // arbitrary input
		check(t, sign(t, "HS256", []byte(secret), `{"alg":"HS256"}`, string(payload))) // signed, so the claim checks run
	})
}

func BenchmarkVerify(b *testing.B) {
	v := newVerifier(b, Config{SigningKey: secret}, clock)
	token := hs256(b, claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(token); err != nil {
			b.Fatal(err)
		}
	}
}
