package proxmoxsim

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The helpers the simulator tests share: a simulator on loopback TLS,
// and calls through its HTTP API as bpg makes them.

const token = "crossplane@pve!provider=secret"

func newSim(t *testing.T, mutate ...func(*Options)) *Sim {
	t.Helper()
	o := Options{
		Node: "pve1", Dir: t.TempDir(), Token: token, NodeAddress: "127.0.0.2",
		Templates: []Template{{VMID: 9002, Name: "nixos-template", DiskInterface: "virtio0", DiskGiB: 8, Boot: "order=virtio0"}},
		DHCP:      map[string]string{"vmbr0.20": "10.0.20.0/24"},
		HostDNS:   []string{"192.0.2.53"},
	}
	for _, m := range mutate {
		m(&o)
	}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

type answer struct {
	Status int
	Reason string // the status line's reason phrase
	Data   json.RawMessage
}

func call(t *testing.T, s *Sim, method, path string, form url.Values) answer {
	t.Helper()
	u := strings.TrimSuffix(s.URL, "/") + "/api2/json" + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	rsp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	b, _ := io.ReadAll(rsp.Body)
	_ = json.Unmarshal(b, &out)
	return answer{Status: rsp.StatusCode, Reason: strings.TrimPrefix(rsp.Status, fmt.Sprint(rsp.StatusCode)+" "), Data: out.Data}
}

// ok calls and fails t on an error answer; a task's UPID is waited for.
func ok(t *testing.T, s *Sim, method, path string, form url.Values) answer {
	t.Helper()
	a := call(t, s, method, path, form)
	if a.Status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, a.Status, a.Reason)
	}
	var upid string
	if json.Unmarshal(a.Data, &upid) == nil && strings.HasPrefix(upid, "UPID:") {
		if exit := waitTask(t, s, upid); exit != "OK" {
			t.Fatalf("%s %s: task failed: %s", method, path, exit)
		}
	}
	return a
}

func waitTask(t *testing.T, s *Sim, upid string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		a := call(t, s, http.MethodGet, "/nodes/pve1/tasks/"+upid+"/status", nil)
		var st struct{ Status, Exitstatus string }
		_ = json.Unmarshal(a.Data, &st)
		if st.Status == "stopped" {
			return st.Exitstatus
		}
	}
	t.Fatalf("task %s did not end", upid)
	return ""
}

func clone(t *testing.T, s *Sim, newid string) {
	t.Helper()
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {newid}, "full": {"1"}, "name": {"vm" + newid}})
}

func vmState(t *testing.T, s *Sim, id int) VMState {
	t.Helper()
	st, found := s.VM(id)
	if !found {
		t.Fatalf("VM %d does not exist", id)
	}
	return st
}

func writeSnippet(t *testing.T, s *Sim, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.SnippetsDir(), name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
