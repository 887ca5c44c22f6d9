package testflake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Call is one recorded switch-to-configuration call.
type Call struct {
	Action, Toplevel, Result string // Result: start, ok or fail
}

// Calls reads the calls recorded in recordDir, in order.
func Calls(recordDir string) ([]Call, error) {
	b, err := os.ReadFile(filepath.Join(recordDir, "calls.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read recorded calls: %w", err)
	}
	var calls []Call
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		calls = append(calls, Call{Action: f[0], Toplevel: f[1], Result: f[2]})
	}
	return calls, nil
}

// Current is the toplevel the last successful switch (or test) activated,
// "" if none.
func Current(recordDir string) string { return readTrim(filepath.Join(recordDir, "current")) }

// BootDefault is the toplevel the last successful switch or boot made the
// boot default, "" if none.
func BootDefault(recordDir string) string { return readTrim(filepath.Join(recordDir, "boot")) }

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// Succeeded is the pair of records a successful call leaves.
func Succeeded(action, toplevel string) []Call {
	return []Call{{Action: action, Toplevel: toplevel, Result: "start"}, {Action: action, Toplevel: toplevel, Result: "ok"}}
}

// Failed is the pair of records a failed call leaves.
func Failed(action, toplevel string) []Call {
	return []Call{{Action: action, Toplevel: toplevel, Result: "start"}, {Action: action, Toplevel: toplevel, Result: "fail"}}
}

// Join concatenates call lists, for expectations.
func Join(lists ...[]Call) []Call {
	var out []Call
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
