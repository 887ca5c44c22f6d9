package proxmoxsim

import (
	"fmt"
	"net/url"
	"time"
)

// A task is a worker Proxmox forks for a long operation (clone, start,
// resize...): the API call answers its UPID at once and the client polls
// GET /nodes/{node}/tasks/{upid}/status until it has stopped, then reads
// "exitstatus" ("OK" or the error) and, on failure, the task log
// (pve-common PVE::RESTEnvironment::fork_worker; bpg tasks.WaitForTask).
type task struct {
	upid string
	done bool
	exit string
	log  []string
}

// startTask forks a worker that runs fn after d. fn runs with s.mu held and
// returns the task's error.
func (s *Sim) startTask(typ, id string, d time.Duration, fn func() error) (string, *apiError) {
	s.upidSeq++
	now := time.Now()
	// UPID:node:pid:pstart:starttime:type:id:user: (all hex but the words).
	upid := fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:root@pam:", s.opts.Node, 0x1000+s.upidSeq, 0x186A0+s.upidSeq, now.Unix(), typ, id)
	t := &task{upid: upid}
	s.tasks[upid] = t
	finish := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		err := fn()
		t.done = true
		t.exit = "OK"
		if err != nil {
			t.exit = err.Error()
			t.log = append(t.log, err.Error())
			s.opts.Logf("proxmoxsim: task %s %s failed: %v", typ, id, err)
		}
		t.log = append(t.log, "TASK "+map[bool]string{true: "OK", false: "ERROR: " + t.exit}[err == nil])
	}
	if d <= 0 {
		// Run inline but outside the caller's critical section semantics:
		// the caller holds s.mu, so defer to a goroutine.
		go finish()
	} else {
		time.AfterFunc(d, finish)
	}
	return upid, nil
}

func init() {
	handle("GET", `/nodes/([^/]+)/tasks/([^/]+)/status`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		t := s.tasks[m[2]]
		if t == nil {
			return nil, die("no such task")
		}
		st := map[string]any{"upid": t.upid, "node": s.opts.Node, "status": "running", "pid": 4000}
		if t.done {
			st["status"] = "stopped"
			st["exitstatus"] = t.exit
		}
		return st, nil
	})
	handle("GET", `/nodes/([^/]+)/tasks/([^/]+)/log`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		t := s.tasks[m[2]]
		if t == nil {
			return nil, die("no such task")
		}
		lines := make([]map[string]any, 0, len(t.log))
		for i, l := range t.log {
			lines = append(lines, map[string]any{"n": i + 1, "t": l})
		}
		return lines, nil
	})
}
