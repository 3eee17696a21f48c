package policies

import (
	"io/fs"
	"os"
	"path/filepath"
)

// CopyTo writes the shipped policies into dir, with edit (when not nil)
// applied to each file's source: a starting point for a policy directory of
// one's own, and how tests change one shipped file and keep the rest.
func CopyTo(dir string, edit func(name, src string) string) error {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(FS, e.Name())
		if err != nil {
			return err
		}
		src := string(b)
		if edit != nil {
			src = edit(e.Name(), src)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(src), 0o644); err != nil {
			return err
		}
	}
	return nil
}
