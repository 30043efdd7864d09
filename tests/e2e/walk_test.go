package e2e

import (
	"io/fs"
	"path/filepath"
)

func walk(root string, f func(rel string)) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			f(filepath.ToSlash(rel))
		}
		return nil
	})
}
