package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Prometheus is a real Prometheus server (built from the module proxy by
// hack/build-rollout.sh) on a loopback port, scraping the targets it was
// given: the rollout driver reads machines' verdicts from it, as it does in
// a lab.
type Prometheus struct {
	URL  string
	Proc *Process
}

// PrometheusConfig is what the server scrapes and alerts on.
type PrometheusConfig struct {
	Bin     string   // the prometheus binary
	Dir     string   // its config, data and log
	Targets []string // host:port of each agent's metrics endpoint
	// Rules is the body of a rule file (groups: ...), "" for none.
	Rules string
	// Interval is the scrape and rule evaluation interval [1s].
	Interval time.Duration
	// Listen is the address it serves on [127.0.0.1]: pods reach it on
	// the stack's ClusterIP.
	Listen string
}

// StartPrometheus starts the server and waits until it is ready.
func StartPrometheus(ctx context.Context, c PrometheusConfig) (*Prometheus, error) {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	var targets []string
	for _, t := range c.Targets {
		targets = append(targets, fmt.Sprintf("%q", t))
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n  scrape_timeout: %s\n", c.Interval, c.Interval, c.Interval)
	if c.Rules != "" {
		if err := os.WriteFile(filepath.Join(c.Dir, "rules.yml"), []byte(c.Rules), 0o644); err != nil {
			return nil, err
		}
		cfg += "rule_files: [rules.yml]\n"
	}
	cfg += "scrape_configs:\n  - job_name: nix-gitops\n    static_configs:\n      - targets: [" + strings.Join(targets, ", ") + "]\n"
	if err := os.WriteFile(filepath.Join(c.Dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1"
	}
	addr := fmt.Sprintf("%s:%d", c.Listen, port)
	p, err := StartProcess("prometheus", filepath.Join(c.Dir, "prometheus.log"), []string{"HOME=" + c.Dir}, c.Bin,
		"--config.file="+filepath.Join(c.Dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(c.Dir, "data"),
		"--web.listen-address="+addr, "--web.enable-lifecycle")
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{URL: "http://" + addr, Proc: p}
	hc := &http.Client{Timeout: 2 * time.Second}
	if err := poll(ctx, time.Minute, func(ctx context.Context) (bool, error) { return httpOK(ctx, hc, prom.URL+"/-/ready") }, p); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("prometheus did not get ready: %w\n%s", err, p.Tail(20))
	}
	return prom, nil
}
