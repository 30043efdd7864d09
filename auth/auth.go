// Package auth verifies the access tokens Django's SimpleJWT (5.2.2, on PyJWT
// 2.6) issues, accepting exactly what rest_framework_simplejwt.tokens.AccessToken
// accepts under the same SIMPLE_JWT settings, and returns the user id claim.
//
// Looking the user up (missing or inactive user) is the caller's job.
package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Every error Verify returns wraps ErrInvalidToken; the more specific ones
// below wrap it too, for callers that want to tell them apart.
var (
	ErrInvalidToken = errors.New("invalid token")
	ErrExpired      = fmt.Errorf("%w: expired", ErrInvalidToken)
	ErrWrongType    = fmt.Errorf("%w: not an access token", ErrInvalidToken)
	ErrNoUserID     = fmt.Errorf("%w: no recognizable user identification", ErrInvalidToken)
)

// Config mirrors Django's SIMPLE_JWT settings. Every field is used as
// given; the defaults are the configuration's (package config).
type Config struct {
	Algorithm      string        // HS256, HS384, HS512, RS256/384/512, ES256/384/512
	SigningKey     string        // HMAC secret (defaults to SECRET_KEY at the caller); unused for RS/ES
	VerifyingKey   string        // PEM public key (or certificate, or private key) for RS*/ES*
	Audience       string        // checked only when non-empty
	Issuer         string        // checked only when non-empty
	Leeway         time.Duration // tolerance on exp, nbf and iat
	UserIDClaim    string        // "user_id" in SimpleJWT's defaults
	TokenTypeClaim string        // "token_type" in SimpleJWT's defaults
}

// Verifier checks SimpleJWT access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	key    any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
	parser *jwt.Parser
	now    func() time.Time // replaced in tests
}

// The largest exp Python's datetime.utcfromtimestamp accepts is in year 9999,
// the smallest in year 1; SimpleJWT fails on anything outside.
const (
	minExp = -62135596800
	maxExp = 253402300800 // exclusive
)

var curves = map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}

// NewVerifier checks cfg and prepares the key. Errors name the Django setting at fault.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.UserIDClaim == "" {
		return nil, errors.New("SIMPLE_JWT_USER_ID_CLAIM: empty")
	}
	if cfg.TokenTypeClaim == "" {
		return nil, errors.New("SIMPLE_JWT_TOKEN_TYPE_CLAIM: empty")
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("SIMPLE_JWT_LEEWAY: must not be negative")
	}
	var key any
	switch alg := cfg.Algorithm; alg {
	case "HS256", "HS384", "HS512":
		if cfg.SigningKey == "" {
			return nil, errors.New("SIMPLE_JWT_SIGNING_KEY: empty HMAC key")
		}
		// PyJWT refuses to use a PEM or SSH key as an HMAC secret.
		if looksAsymmetric(cfg.SigningKey) {
			return nil, errors.New("SIMPLE_JWT_SIGNING_KEY: an asymmetric key cannot be an HMAC secret")
		}
		key = []byte(cfg.SigningKey)
	case "RS256", "RS384", "RS512":
		pub, err := rsaKey(cfg.VerifyingKey)
		if err != nil {
			return nil, fmt.Errorf("SIMPLE_JWT_VERIFYING_KEY: %s needs a PEM RSA public key: %w", alg, err)
		}
		if pub.N.BitLen() < 1024 {
			return nil, fmt.Errorf("SIMPLE_JWT_VERIFYING_KEY: RSA key of %d bits is too small", pub.N.BitLen())
		}
		key = pub
	case "ES256", "ES384", "ES512":
		pub, err := ecKey(cfg.VerifyingKey)
		if err != nil {
			return nil, fmt.Errorf("SIMPLE_JWT_VERIFYING_KEY: %s needs a PEM EC public key: %w", alg, err)
		}
		if pub.Curve != curves[alg] {
			return nil, fmt.Errorf("SIMPLE_JWT_VERIFYING_KEY: %s needs curve %s, key is %s",
				alg, curves[alg].Params().Name, pub.Curve.Params().Name)
		}
		key = pub
	default:
		return nil, fmt.Errorf("SIMPLE_JWT_ALGORITHM: unsupported algorithm %.16q", alg)
	}
	return &Verifier{
		cfg: cfg,
		key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{cfg.Algorithm}), // exactly the configured one; never none
			jwt.WithJSONNumber(),
			jwt.WithoutClaimsValidation(), // done below, the PyJWT/SimpleJWT way
		),
		now: time.Now,
	}, nil
}

// Verify checks token as SimpleJWT's AccessToken(token) does and returns the user id claim.
// Error messages never contain the token.
func (v *Verifier) Verify(token string) (userID int64, err error) {
	if token == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	// PyJWT refuses an unencoded payload (RFC 7797) unless given a detached one.
	if b64, ok := t.Header["b64"].(bool); ok && !b64 {
		return 0, fmt.Errorf("%w: b64=false header", ErrInvalidToken)
	}
	if err := v.checkTimes(claims); err != nil {
		return 0, err
	}
	if v.cfg.Audience != "" && !hasAudience(claims["aud"], v.cfg.Audience) {
		return 0, fmt.Errorf("%w: aud missing or not %q", ErrInvalidToken, v.cfg.Audience)
	}
	if v.cfg.Issuer != "" {
		if iss, ok := claims["iss"].(string); !ok || iss != v.cfg.Issuer {
			return 0, fmt.Errorf("%w: iss missing or not %q", ErrInvalidToken, v.cfg.Issuer)
		}
	}
	if _, ok := claims["jti"]; !ok {
		return 0, fmt.Errorf("%w: no jti claim", ErrInvalidToken)
	}
	switch typ, ok := claims[v.cfg.TokenTypeClaim]; {
	case !ok:
		return 0, fmt.Errorf("%w: no %s claim", ErrWrongType, v.cfg.TokenTypeClaim)
	case typ != "access":
		return 0, fmt.Errorf("%w: %s is not \"access\"", ErrWrongType, v.cfg.TokenTypeClaim)
	}
	raw, ok := claims[v.cfg.UserIDClaim]
	if !ok {
		return 0, fmt.Errorf("%w: no %s claim", ErrNoUserID, v.cfg.UserIDClaim)
	}
	id, ok := parseUserID(raw)
	if !ok {
		return 0, fmt.Errorf("%w: %s is not an integer", ErrNoUserID, v.cfg.UserIDClaim)
	}
	return id, nil
}

// checkTimes applies PyJWT's iat/nbf/exp rules (now in whole seconds, nbf and
// exp truncated by int()) and SimpleJWT's (exp required). For the integer
// claims SimpleJWT mints, this is exactly "exp <= now - leeway is expired".
func (v *Verifier) checkTimes(claims jwt.MapClaims) error {
	now := v.now()
	latest := float64(now.Unix()) + v.cfg.Leeway.Seconds()
	if iat, ok, err := number(claims, "iat"); err != nil {
		return err
	} else if ok && iat > latest {
		return fmt.Errorf("%w: iat is in the future", ErrInvalidToken)
	}
	if nbf, ok, err := number(claims, "nbf"); err != nil {
		return err
	} else if ok && math.Trunc(nbf) > latest {
		return fmt.Errorf("%w: nbf is in the future", ErrInvalidToken)
	}
	exp, ok, err := number(claims, "exp")
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: no exp claim", ErrInvalidToken)
	case exp < minExp || exp >= maxExp:
		return fmt.Errorf("%w: exp out of range", ErrInvalidToken)
	}
	end := time.Unix(int64(exp), 0).Add(v.cfg.Leeway) // int64() truncates like int()
	if !now.Before(end) {
		return fmt.Errorf("%w: exp %d, now %d", ErrExpired, int64(exp), now.Unix())
	}
	return nil
}

// number returns claim name, which must be a finite JSON number if present.
func number(claims jwt.MapClaims, name string) (f float64, present bool, err error) {
	raw, ok := claims[name]
	if !ok {
		return 0, false, nil
	}
	n, isNum := raw.(json.Number)
	if !isNum {
		return 0, true, fmt.Errorf("%w: %s is not a number", ErrInvalidToken, name)
	}
	f, err = n.Float64()
	if err != nil { // only overflow reaches here: the JSON decoder checked the syntax
		return 0, true, fmt.Errorf("%w: %s out of range", ErrInvalidToken, name)
	}
	return f, true, nil
}

// hasAudience follows PyJWT 2.6: aud must be a non-empty string or a non-empty
// list of strings, one of them equal to want.
func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		found := false
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return false
			}
			found = found || s == want
		}
		return found
	}
	return false
}

// parseUserID accepts a JSON number with an integral value (1, 1.0, 1e2, as
// Django's int() cast does, but refusing 1.5) or a string of ASCII decimal
// digits, within int64.
func parseUserID(raw any) (int64, bool) {
	switch x := raw.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			id, err := strconv.ParseInt(s, 10, 64)
			return id, err == nil
		}
		f, err := strconv.ParseFloat(s, 64) // Python's json makes these a float
		if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
			return 0, false
		}
		return int64(f), true
	case string:
		if x == "" || strings.Trim(x, "0123456789") != "" {
			return 0, false
		}
		id, err := strconv.ParseInt(x, 10, 64)
		return id, err == nil
	}
	return 0, false
}

func rsaKey(s string) (*rsa.PublicKey, error) {
	pub, err := jwt.ParseRSAPublicKeyFromPEM([]byte(s))
	if err == nil {
		return pub, nil
	}
	// PyJWT also accepts a private key here.
	if priv, perr := jwt.ParseRSAPrivateKeyFromPEM([]byte(s)); perr == nil {
		return &priv.PublicKey, nil
	}
	return nil, err
}

func ecKey(s string) (*ecdsa.PublicKey, error) {
	pub, err := jwt.ParseECPublicKeyFromPEM([]byte(s))
	if err == nil {
		return pub, nil
	}
	if priv, perr := jwt.ParseECPrivateKeyFromPEM([]byte(s)); perr == nil {
		return &priv.PublicKey, nil
	}
	return nil, err
}

// looksAsymmetric approximates PyJWT's is_pem_format / is_ssh_key.
func looksAsymmetric(key string) bool {
	if block, _ := pem.Decode([]byte(key)); block != nil {
		return true
	}
	for _, p := range []string{"ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp"} {
		if strings.Contains(key, p) {
			return true
		}
	}
	return false
}
