// Command stc is the VM suite's STAND-IN for NixOS's
// switch-to-configuration-ng (internal/stcstandin says what it does and
// what it leaves out): hack/vm-image.sh installs it in the guest image, and
// every system's bin/switch-to-configuration wrapper runs it, as
// switchable-system.nix's wrapper runs the real one.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/homelab-infra/homelab-infra/internal/stcstandin"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "Usage: switch-to-configuration [check|switch|boot|test|dry-activate]")
		os.Exit(1)
	}
	// main.rs:2697-2701: root only.
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "switch-to-configuration must be run as the root user")
		os.Exit(1)
	}
	env, err := stcstandin.EnvFromOS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	bus, err := stcstandin.DialBus(ctx)
	if err != nil && os.Args[1] != "boot" && os.Args[1] != "check" {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var sd stcstandin.Systemd
	if bus != nil {
		sd = bus
	}
	code := stcstandin.Switch(ctx, os.Args[1], env, sd, os.Stderr)
	if bus != nil {
		bus.Close()
	}
	os.Exit(code)
}
