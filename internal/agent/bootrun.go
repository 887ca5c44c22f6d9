// bootrun.go: the boot-time start runs once per boot.
//
// A switch starts every active target again (switch-to-configuration-ng
// starts them after the activation, so that they pull in what they newly
// want), and multi-user.target wants nix-gitops-apply.service. Unchecked,
// every switch would run the boot-time start again: it would wait for the
// lock of the very run that switches, then do nothing. The unit's
// ExecCondition= (`apply --first-boot --condition`) has systemd skip such a
// start: once a boot-time run has finished in this boot, only a start by the
// timer ($TRIGGER_UNIT) runs the agent. A file in the state folder holds the
// id of the boot in which that run finished, so a reboot clears it.

package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// BootRunFile is the file in the state folder that records the boot in
// which a boot-time run last finished.
const BootRunFile = "boot-run"

// bootIDFile is the kernel's id of the running boot.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

func bootID() ([]byte, error) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the boot id: %w", err)
	}
	return bytes.TrimSpace(b), nil
}

// BootRunDone reports whether a boot-time run has finished in this boot.
// Anything unreadable counts as not finished: the start then runs, as it did
// before this check existed.
func BootRunDone(stateDir string) bool {
	id, err := bootID()
	if err != nil || len(id) == 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join(stateDir, BootRunFile))
	return err == nil && bytes.Equal(bytes.TrimSpace(b), id)
}

// MarkBootRun records that a boot-time run has finished in this boot.
func MarkBootRun(stateDir string) error {
	id, err := bootID()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("cannot create the state folder: %w", err)
	}
	tmp := filepath.Join(stateDir, BootRunFile+".tmp")
	if err := os.WriteFile(tmp, append(id, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot record the boot-time run: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(stateDir, BootRunFile)); err != nil {
		return fmt.Errorf("cannot record the boot-time run: %w", err)
	}
	return nil
}
