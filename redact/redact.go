// Package redact masks the secrets a connection URL may carry before it is
// logged or shown: the password of its user info, and the values of query
// parameters that hold passwords or keys (lib/pq and go-redis read
// ?password=, libpq sslpassword).
package redact

import (
	"net/url"
	"strings"
)

// mask replaces a secret.
const mask = "xxxxx"

// secretParams are query parameters whose value is a secret.
var secretParams = []string{"password", "passwd", "pass", "pwd", "sslpassword", "secret", "token", "key"}

// URL returns s with its secrets masked. Text that is not a URL is masked
// whole unless it has no secret-looking part, since it cannot be parsed to
// know.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return mask
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if isSecret(k) {
				q.Set(k, mask)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func isSecret(param string) bool {
	p := strings.ToLower(param)
	for _, s := range secretParams {
		if p == s {
			return true
		}
	}
	return false
}
