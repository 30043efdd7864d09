package consumer

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// originAllowed is Channels' AllowedHostsOriginValidator with Django's
// ALLOWED_HOSTS semantics: "*" allows all, ".example.com" matches the domain
// and its subdomains, anything else the exact host; the port is ignored.
// Divergence (PROTOCOL.md section 4): a request without an Origin header is
// allowed, since mobile apps send none.
func originAllowed(header []string, allowed []string) bool {
	if len(header) == 0 {
		return true
	}
	for _, p := range allowed {
		if p == "*" {
			return true
		}
	}
	u, err := url.Parse(header[0])
	if err != nil || u.Host == "" {
		return false // includes "Origin: null"
	}
	host := strings.ToLower(u.Hostname())
	for _, p := range allowed {
		if matchHost(host, u.Scheme, p) {
			return true
		}
	}
	return false
}

// originWellFormed is autobahn's check, run by Daphne before the consumer:
// one Origin header at most, and one that names a host unless it is "null"
// or a file:// URL. Daphne answers anything else with HTTP 400.
func originWellFormed(header []string) bool {
	switch len(header) {
	case 0:
		return true
	case 1:
	default:
		return false
	}
	origin := strings.TrimSpace(header[0])
	if strings.EqualFold(origin, "null") {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Scheme, "file") {
		return true
	}
	if u.Hostname() == "" {
		return false
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n > 65535 {
			return false
		}
	}
	return true
}

func matchHost(host, scheme, pattern string) bool {
	pattern = strings.ToLower(strings.TrimSpace(pattern))
	if pattern == "" {
		return false
	}
	if i := strings.Index(pattern, "://"); i >= 0 {
		// A pattern with a scheme must match it too, as in Channels.
		pu, err := url.Parse(pattern)
		if err != nil || pu.Scheme != strings.ToLower(scheme) {
			return false
		}
		pattern = pu.Hostname()
	} else if h := (&url.URL{Host: pattern}).Hostname(); h != "" {
		pattern = h // drop a port written in the pattern
	}
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(host, pattern) || host == pattern[1:]
	}
	return host == pattern
}

// HostAllowed is Django's check of a request's Host header against
// ALLOWED_HOSTS (validate_host): "*" allows all, ".example.com" a domain and
// its subdomains, anything else the exact host; the port is ignored.
func HostAllowed(hostport string, allowed []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "" {
		return false
	}
	for _, p := range allowed {
		if p == "*" || matchHost(host, "", p) {
			return true
		}
	}
	return false
}
