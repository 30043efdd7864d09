package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// A machine without the server programs fails the test, naming the package.
func TestMissingPostgresNamesThePackage(t *testing.T) {
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	for _, env := range []string{"", t.TempDir()} {
		_, err := findPGBin(env, t.TempDir()+"/*/bin", notFound)
		if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
			t.Errorf("TESTENV_PG_BIN=%q: err = %v, want one naming the postgresql package", env, err)
		}
	}
}
