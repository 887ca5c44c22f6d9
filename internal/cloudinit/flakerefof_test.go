package cloudinit_test

import (
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
)

// TestFlakeRefOfRender: FlakeRefOf reads back the flake ref Render wrote,
// whatever the other values. The function relies on it to skip parsing a
// snippet that is exactly what it renders (function/status.go).
func TestFlakeRefOfRender(t *testing.T) {
	for _, ref := range []string{"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01", "yes", "a: b", "x #y", "\"q\"", "ü", "12:30", "- z"} {
		c := config()
		c.FlakeRef = ref
		ud, err := cloudinit.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cloudinit.FlakeRefOf(string(ud))
		if !ok || got != ref {
			t.Errorf("FlakeRefOf(Render(flake ref %q)) = %q, %v; want it back", ref, got, ok)
		}
	}
}
