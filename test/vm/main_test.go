//go:build vm

package vm

import (
	"os"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/nixcheck"
)

// TestMain removes the NixOS option data nixcheck wrote once for the
// package's tests (nixcheck.OptionTreeFile).
func TestMain(m *testing.M) {
	code := m.Run()
	if f := nixcheck.WrittenOptionTree(); f != "" {
		os.Remove(f)
	}
	os.Exit(code)
}
