package main

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// BenchmarkAgentRolloutTick: a daemon's no-op tick in rollout mode (deploy,
// reboot and branch refs read together) against the plain mode (one ref):
// requests, bytes and CPU per tick. Figures are printed, never asserted.
func BenchmarkAgentRolloutTick(b *testing.B) {
	l := newLab(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	handler := &testflake.Server{Root: filepath.Dir(l.repo.Bare)}
	srv := &http.Server{Handler: handler}
	go srv.Serve(cl)
	defer srv.Close()
	l.cfg["flake"] = l.repo.FlakeRef("http://"+ln.Addr().String()+"/remote.git", "h1")
	c1 := l.commit(testflake.System{Version: "1"})
	for _, ref := range []string{"deploy/h1", "reboot/h1"} {
		if _, err := testflake.Git(l.repo.Bare, nil, "update-ref", "refs/heads/"+ref, c1); err != nil {
			b.Fatal(err)
		}
	}
	l.apply(0)
	l.cfg["poll"] = map[string]any{"interval": "20ms", "jitter": "0s"}
	l.cfg["metrics"] = map[string]any{"listen": "off"}
	l.cfg["log"] = map[string]any{"level": "debug"}

	var lines []string
	for _, mode := range []string{"plain", "rollout"} {
		if mode == "rollout" {
			l.cfg["rollout"] = map[string]any{"enable": true}
		}
		cmd := l.cmd("run")
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second)
		cpu0, _ := procStat(cmd.Process.Pid)
		in0, out0, req0 := cl.in.Load(), cl.out.Load(), handler.Requests.Load()
		ticks0 := strings.Count(stderr.String(), `msg="run finished"`)
		time.Sleep(3 * time.Second)
		cpu1, _ := procStat(cmd.Process.Pid)
		ticks := strings.Count(stderr.String(), `msg="run finished"`) - ticks0
		req, in, out := handler.Requests.Load()-req0, cl.in.Load()-in0, cl.out.Load()-out0
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if ticks == 0 {
			b.Fatalf("%s: no ticks:\n%s", mode, stderr.String())
		}
		n := float64(ticks)
		b.ReportMetric(float64(req)/n, mode+"-requests/tick")
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/n, mode+"-cpu-ms/tick")
		lines = append(lines, fmt.Sprintf("%-8s %6d %14.2f %16.0f / %-6.0f %10.2f", mode, ticks, float64(req)/n, float64(in)/n, float64(out)/n,
			float64((cpu1-cpu0).Microseconds())/1000/n))
	}
	fmt.Printf("\nnix-gitops daemon no-op tick, plain vs rollout mode (git http-backend on loopback)\n%-8s %6s %14s %25s %10s\n%s\n",
		"mode", "ticks", "requests/tick", "bytes in / out per tick", "CPU ms", strings.Join(lines, "\n"))
}
