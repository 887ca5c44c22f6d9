// Package rollout is the rollout driver (design D13): it plans a rollout as
// a pure function of Git (the claims and the policy at the target commit,
// and the machines' deploy refs), moves each machine's deploy/<host> and
// reboot/<host> refs forward, only to commits on main and never backwards,
// and reads each machine's verdict from Prometheus, never from the machine.
// labctl rollout and the steps of the Argo WorkflowTemplate in workflows/
// run this one piece of code.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sigs.k8s.io/yaml"
)

// PolicyPath is the reviewed policy file, read at the target commit.
const PolicyPath = "workflows/rollout-policy.yaml"

// Policy is the reviewed policy file: how fast a rollout may go and where it
// stops for a person.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Canary is how many machines go first, alone in the first wave.
	Canary int `json:"canary"`
	// WaveSize is how many machines each later wave holds.
	WaveSize int `json:"waveSize"`
	// Parallelism is how many machines of a wave are in flight at once.
	Parallelism int `json:"parallelism"`
	// MaxInFlight is the fleet-wide limit over all rollouts. In Argo it is
	// a semaphore kept in a ConfigMap, of MaxInFlight / Parallelism slots,
	// one held by each wave that moves machines (workflows/rollout.yaml).
	MaxInFlight int `json:"maxInFlight"`
	// Soak is how long the canary runs before the next wave; an alert firing
	// for a canary machine then halts the rollout.
	Soak Duration `json:"soak"`
	// HostBudget is how long one machine may take to report its verdict on
	// the target.
	HostBudget Duration `json:"hostBudget"`
	// StaleAfter: a verdict whose agent has not looked at Git for longer is
	// stale, and a stale machine halts the rollout.
	StaleAfter Duration `json:"staleAfter"`
	Gates      Gates    `json:"gates"`
}

// Gates are the approval gates.
type Gates struct {
	// DNS stops before any wave that holds a DNS machine, or whose change
	// touches the DNS modules.
	DNS *DNSGate `json:"dns,omitempty"`
	// Reboot stops before reboots; approved, machines reboot one at a time.
	Reboot bool `json:"reboot"`
}

// DNSGate says what a DNS change is.
type DNSGate struct {
	Roles []string `json:"roles"`
	Paths []string `json:"paths"`
}

// Duration is a Go duration string in YAML.
type Duration time.Duration

// UnmarshalJSON reads "90s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration such as "90s" or "10m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration such as "90s" or "10m": %w`, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParsePolicy reads and checks a policy file. Unknown fields are errors, so
// a misspelt gate is never silently off.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return Policy{}, fmt.Errorf("cannot parse %s: %w", PolicyPath, err)
	}
	return p, p.Validate()
}

// Validate names each bad field and its fix.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(PolicyPath+": "+format, a...)) }
	if p.APIVersion != "homelab.dev/v1alpha1" || p.Kind != "RolloutPolicy" {
		bad("apiVersion/kind %q/%q: want homelab.dev/v1alpha1, RolloutPolicy", p.APIVersion, p.Kind)
	}
	for name, v := range map[string]int{"canary": p.Canary, "waveSize": p.WaveSize, "parallelism": p.Parallelism, "maxInFlight": p.MaxInFlight} {
		if v < 1 {
			bad("%s: %d: want 1 or more", name, v)
		}
	}
	if p.Parallelism > p.WaveSize && p.WaveSize > 0 {
		bad("parallelism %d is more than waveSize %d: a wave never has more machines in flight than it holds; lower parallelism", p.Parallelism, p.WaveSize)
	}
	for name, d := range map[string]Duration{"hostBudget": p.HostBudget, "staleAfter": p.StaleAfter} {
		if d <= 0 {
			bad("%s: want a positive duration such as \"15m\"", name)
		}
	}
	if p.Soak < 0 {
		bad("soak: %s is negative: give 0s or more", p.Soak.D())
	}
	if g := p.Gates.DNS; g != nil && len(g.Roles) == 0 && len(g.Paths) == 0 {
		bad("gates.dns: give roles or paths (or leave the gate out)")
	}
	return errors.Join(errs...)
}
