package proxmoxsim

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A task is a worker Proxmox forks for a long operation (clone, start,
// resize, a config update through POST...): the call answers its UPID at
// once and the client polls GET /nodes/{node}/tasks/{upid}/status until it
// has stopped, then reads "exitstatus" and, on failure, the task log
// (pve-common PVE::RESTEnvironment::fork_worker; bpg tasks.WaitForTask).
//
// fork_worker writes "TASK ERROR: <error, newlines made spaces>" as the
// log's last line when the worker dies, "TASK WARNINGS: <n>" when it
// warned, else "TASK OK"; the exit status is that line without "TASK "
// and, for an error, without "ERROR: " (PVE::Tools upid_read_status).
// The UPID names the node, the type, the id and the user the worker runs
// for - for an API token, the token (user@realm!name).
type task struct {
	upid  string
	node  string
	typ   string
	id    string
	user  string
	start time.Time
	done  bool
	exit  string
	log   []string
	warns int
}

// print records a line a worker (or a command it runs) printed.
func (t *task) print(line string) { t.log = append(t.log, line) }

// warn records a warning in the task log (log_warn: "WARN: <msg>").
func (t *task) warn(msg string) {
	t.log = append(t.log, "WARN: "+msg)
	t.warns++
}

// startTask forks a worker on node that runs fn after d. fn runs with s.mu
// held; its error fails the task.
func (s *Sim) startTask(node, typ, id, who string, d time.Duration, fn func(*task) error) (string, *apiError) {
	s.upidSeq++
	now := time.Now()
	// UPID:node:pid:pstart:starttime:type:id:user: (pid, pstart and
	// starttime in hex; PVE::Tools upid_encode).
	upid := fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, 0x1000+s.upidSeq, 0x186A0+s.upidSeq, now.Unix(), typ, id, who)
	t := &task{upid: upid, node: node, typ: typ, id: id, user: who, start: now}
	s.tasks[upid] = t
	finish := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		err := fn(t)
		t.done = true
		switch {
		case err != nil:
			msg := taskMessage(err)
			t.exit = msg
			t.log = append(t.log, "TASK ERROR: "+msg)
			s.opts.Logf("proxmoxsim: task %s %s failed: %s", typ, id, msg)
		case t.warns > 0:
			t.exit = fmt.Sprintf("WARNINGS: %d", t.warns)
			t.log = append(t.log, "TASK "+t.exit)
		default:
			t.exit = "OK"
			t.log = append(t.log, "TASK OK")
		}
	}
	if d <= 0 {
		// The caller holds s.mu: finish after it returns.
		go finish()
	} else {
		time.AfterFunc(d, finish)
	}
	return upid, nil
}

// taskMessage is a worker's error as its log's last line carries it: an
// exception's message and its parameter errors, newlines made spaces.
func taskMessage(err error) string {
	var ae *apiError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.msg
		for _, k := range sortedKeys(ae.params) {
			msg += "\n" + k + ": " + ae.params[k]
		}
	}
	return strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", " ")
}

var upidRE = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$`)

func init() {
	handle("GET", "/nodes/{node}/tasks/{upid}/status", func(s *Sim, c *call) (any, *apiError) {
		t, err := s.ownTask(c)
		if err != nil {
			return nil, err
		}
		m := upidRE.FindStringSubmatch(t.upid)
		pid, _ := strconv.ParseInt(m[3], 16, 64)
		pstart, _ := strconv.ParseInt(m[4], 16, 64)
		st := map[string]any{"upid": t.upid, "node": t.node, "pid": pid, "pstart": pstart, "starttime": t.start.Unix(),
			"type": t.typ, "id": t.id, "user": t.user, "status": "running"}
		if t.done {
			st["status"] = "stopped"
			st["exitstatus"] = t.exit
		}
		return st, nil
	})
	handle("GET", "/nodes/{node}/tasks/{upid}/log", func(s *Sim, c *call) (any, *apiError) {
		t, err := s.ownTask(c)
		if err != nil {
			return nil, err
		}
		lines := make([]map[string]any, 0, len(t.log))
		for i, l := range t.log {
			lines = append(lines, map[string]any{"n": i + 1, "t": l})
		}
		return lines, nil
	})
}

// ownTask finds the task a call names, as pve-manager's PVE/API2/Tasks.pm
// (at 51506f9a2b10e692e73886f55b7c9ff13b82ba89, read_task_status and
// read_task_log) does: an unparseable UPID and a task the node does not
// have are parameter errors, and a task of another user needs Sys.Audit
// on the node.
func (s *Sim) ownTask(c *call) (*task, *apiError) {
	upid := c.get("upid")
	if !upidRE.MatchString(upid) {
		return nil, paramError(map[string]string{"upid": "unable to parse worker upid"})
	}
	t := s.tasks[upid]
	if t == nil || t.node != c.get("node") {
		return nil, paramError(map[string]string{"upid": "no such task"})
	}
	if c.who != t.user {
		if err := s.access.check(c.who, "/nodes/"+c.get("node"), "Sys.Audit"); err != nil {
			return nil, err
		}
	}
	return t, nil
}
