//go:build vault

package main

// `make bench` figures for the secrets stage on a no-op tick (Git did not
// move): what a tick costs with two declared secrets (a KV field and a
// certificate far from renewal) against the same tick with none, in timer
// mode (one process per tick) and daemon mode, and how many Vault requests
// and logins a tick makes. With a valid cached token a tick logs in zero
// times: one KV read per KV secret, nothing for the certificate. Figures are
// printed, never asserted. Vault is the real dev server, behind a counting
// reverse proxy of the benchmark's own.

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// vaultCounter counts the requests that reach Vault, and the logins.
type vaultCounter struct {
	requests, logins atomic.Int64
}

func (v *vlab) countingVault(b *testing.B) *vaultCounter {
	u, err := url.Parse(v.srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &vaultCounter{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if strings.HasSuffix(r.URL.Path, "/login") {
			c.logins.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	v.addr = srv.URL
	return c
}

func BenchmarkVaultNoopTick(b *testing.B) {
	for _, secrets := range []bool{false, true} {
		name := "NoSecrets"
		if secrets {
			name = "TwoSecrets"
		}
		v := newVLab(b)
		vc := v.countingVault(b)
		v.cfg["log"] = map[string]any{"level": "info"}
		if secrets {
			v.boot(v.srv.WrappedSecretID(b, "h1", 5*time.Minute), time.Time{})
			v.commit(v.system("1", nil))
		} else {
			v.commit(testflake.System{Version: "1"})
		}
		v.apply(0)

		b.Run("TimerMode/"+name, func(b *testing.B) {
			req0, log0 := vc.requests.Load(), vc.logins.Load()
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				_, c, _, _ := oneShot(b, v.lab, 10)
				cpu += c
			}
			b.ReportMetric(float64((cpu/time.Duration(b.N)).Microseconds())/1000, "cpu-ms/tick")
			b.ReportMetric(float64(vc.requests.Load()-req0)/float64(b.N), "vault-req/tick")
			b.ReportMetric(float64(vc.logins.Load()-log0)/float64(b.N), "logins/tick")
		})

		b.Run("DaemonMode/"+name, func(b *testing.B) {
			// One daemon run of ~3 s ticking every 50 ms, whatever b.N is.
			v.cfg["poll"] = map[string]any{"interval": "50ms", "jitter": "0s"}
			v.cfg["metrics"] = map[string]any{"listen": "off"}
			// Quiet no-op ticks log "run finished" at debug: the tick count.
			v.cfg["log"] = map[string]any{"level": "debug"}
			defer func() {
				delete(v.cfg, "poll")
				delete(v.cfg, "metrics")
				v.cfg["log"] = map[string]any{"level": "info"}
			}()
			cmd := v.cmd("run")
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer cmd.Process.Kill()
			time.Sleep(time.Second)
			cpu0, _ := procStat(cmd.Process.Pid)
			n0 := strings.Count(stderr.String(), "msg=\"run finished\"")
			req0, log0 := vc.requests.Load(), vc.logins.Load()
			time.Sleep(3 * time.Second)
			cpu1, rss := procStat(cmd.Process.Pid)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			ticks := int64(strings.Count(stderr.String(), "msg=\"run finished\"") - n0)
			if ticks <= 0 {
				b.Fatalf("no ticks:\n%s", stderr.String())
			}
			b.ReportMetric(float64(((cpu1-cpu0)/time.Duration(ticks)).Microseconds())/1000, "cpu-ms/tick")
			b.ReportMetric(float64(vc.requests.Load()-req0)/float64(ticks), "vault-req/tick")
			b.ReportMetric(float64(vc.logins.Load()-log0)/float64(ticks), "logins/tick")
			b.ReportMetric(rss, "RSS-MB")
		})
	}
}
