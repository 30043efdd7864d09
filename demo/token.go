package demo

import (
	"crypto/rand"
	"math/big"
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
