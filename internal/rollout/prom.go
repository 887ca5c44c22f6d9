// prom.go: the only way out of a machine (design D13): its verdict, read
// from Prometheus' HTTP API, never from the machine.

package rollout

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Verdict is one machine's verdict as Prometheus holds it.
type Verdict struct {
	Host   string `json:"host"`
	Commit string `json:"commit"`
	State  string `json:"state"`
	// Age is how long ago the machine's agent last looked at Git.
	Age time.Duration `json:"age"`
}

// Prometheus reads verdicts and alerts.
type Prometheus struct {
	API v1.API
	// Queries counts the queries made (make bench: queries per rollout).
	Queries atomic.Int64
}

// NewPrometheus is a reader of the Prometheus at url (http://host:9090).
func NewPrometheus(url string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("cannot make a Prometheus client for %s: %w", url, err)
	}
	return &Prometheus{API: v1.NewAPI(c)}, nil
}

// hostMatcher is a label matcher for exactly these hosts; nil hosts
// match every machine.
func hostMatcher(hosts []string) string {
	if hosts == nil {
		return `host!=""`
	}
	q := make([]string, len(hosts))
	for i, h := range hosts {
		q[i] = regexp.QuoteMeta(h)
	}
	return `host=~"` + strings.Join(q, "|") + `"`
}

// Verdicts reads the hosts' verdicts in one query: each machine's
// nix_gitops_target_info, its value replaced by the age of the same
// target's nix_gitops_last_check_timestamp_seconds. A host missing from the
// answer has no verdict (its agent never reported, or Prometheus cannot
// scrape it: the series went stale).
func (p *Prometheus) Verdicts(ctx context.Context, hosts []string) (map[string]Verdict, error) {
	q := `nix_gitops_target_info{` + hostMatcher(hosts) + `} * on(instance, job) group_left() (time() - nix_gitops_last_check_timestamp_seconds)`
	vec, err := p.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[string]Verdict{}
	for _, s := range vec {
		v := Verdict{Host: string(s.Metric["host"]), Commit: string(s.Metric["commit"]), State: string(s.Metric["state"]),
			Age: time.Duration(float64(s.Value) * float64(time.Second))}
		if old, dup := out[v.Host]; dup && old.Age < v.Age {
			continue // two targets report one host: the fresher counts
		}
		out[v.Host] = v
	}
	return out, nil
}

// Run is what a machine runs, and how its last run ended.
type Run struct {
	Commit string
	// FailedStage is the stage its last run failed at ("" when it did not).
	FailedStage string
}

// Running reads the hosts' applied commits and last outcomes, labelled with
// their host through the verdict series of the same target.
func (p *Prometheus) Running(ctx context.Context, hosts []string) (map[string]Run, error) {
	join := ` * on(instance, job) group_left(host) nix_gitops_target_info{` + hostMatcher(hosts) + `}`
	applied, err := p.query(ctx, `nix_gitops_applied_info`+join)
	if err != nil {
		return nil, err
	}
	out := map[string]Run{}
	for _, s := range applied {
		out[string(s.Metric["host"])] = Run{Commit: string(s.Metric["commit"])}
	}
	last, err := p.query(ctx, `nix_gitops_last_outcome`+join)
	if err != nil {
		return nil, err
	}
	for _, s := range last {
		h, r := string(s.Metric["host"]), out[string(s.Metric["host"])]
		switch string(s.Metric["outcome"]) {
		case "applied", "pending-reboot", "up-to-date", "waiting-for-ref":
		default:
			r.FailedStage = string(s.Metric["stage"])
			if r.FailedStage == "" {
				r.FailedStage = string(s.Metric["outcome"])
			}
		}
		out[h] = r
	}
	return out, nil
}

// Firing lists the alerts firing for the hosts (alert rules keep the
// machine's host label, see the README).
func (p *Prometheus) Firing(ctx context.Context, hosts []string) ([]string, error) {
	vec, err := p.query(ctx, `ALERTS{alertstate="firing",`+hostMatcher(hosts)+`}`)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range vec {
		out = append(out, string(s.Metric["alertname"])+" on "+string(s.Metric["host"]))
	}
	return out, nil
}

func (p *Prometheus) query(ctx context.Context, q string) (model.Vector, error) {
	p.Queries.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	val, _, err := p.API.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("cannot query Prometheus (%s): %w", q, err)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus answered %s with a %s, not a vector", q, val.Type())
	}
	return vec, nil
}
