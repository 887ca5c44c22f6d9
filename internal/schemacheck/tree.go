package schemacheck

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadTree reads every CustomResourceDefinition found under the given
// folders, recursively; files that hold anything else (examples, scripts)
// are passed over. A kind defined twice keeps its first definition.
func LoadTree(dirs ...string) (Set, error) {
	set := Set{}
	for _, dir := range dirs {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("cannot read %s: %w", p, err)
			}
			// A quick look before a strict decode: only CRDs are loaded.
			if !bytes.Contains(b, []byte("kind: CustomResourceDefinition")) {
				return nil
			}
			crd, err := ReadCRD(p)
			if err != nil {
				return err
			}
			vs, err := New(crd)
			if err != nil {
				return err
			}
			for _, v := range vs {
				if _, ok := set[v.GVK]; !ok {
					set[v.GVK] = v
				}
			}
			n++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot load the CRDs under %s: %w", dir, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("no CRDs under %s", dir)
		}
	}
	return set, nil
}
