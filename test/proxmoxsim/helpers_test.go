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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
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
	// Errors are the body's parameter errors, "key: error" a line, sorted.
	Errors string
}

func do(t *testing.T, s *Sim, method, path string, form url.Values) answer {
	t.Helper()
	return doAs(t, s, token, method, path, form)
}

// doAs calls as API token tok ("user@realm!name=secret").
func doAs(t *testing.T, s *Sim, tok, method, path string, form url.Values) answer {
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
	req.Header.Set("Authorization", "PVEAPIToken="+tok)
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
		Data   json.RawMessage   `json:"data"`
		Errors map[string]string `json:"errors"`
	}
	b, _ := io.ReadAll(rsp.Body)
	_ = json.Unmarshal(b, &out)
	var errs []string
	for k, v := range out.Errors {
		errs = append(errs, k+": "+v)
	}
	sort.Strings(errs)
	return answer{Status: rsp.StatusCode, Reason: strings.TrimPrefix(rsp.Status, fmt.Sprint(rsp.StatusCode)+" "), Data: out.Data,
		Errors: strings.Join(errs, "\n")}
}

// ok calls and fails t on an error answer; a task's UPID is waited for.
func ok(t *testing.T, s *Sim, method, path string, form url.Values) answer {
	t.Helper()
	a := do(t, s, method, path, form)
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
	return waitTaskAs(t, s, token, upid)
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

// setUp runs a pveum set-up script against release major and returns the
// cluster's user.cfg with the script's one token given secret "secret",
// and that token as "id=secret".
func setUp(t *testing.T, major int, script string, env ...string) (*Access, string) {
	t.Helper()
	api, err := LoadAPI(major)
	if err != nil {
		t.Fatal(err)
	}
	a, err := RunPveumScript(api, script, env...)
	if err != nil {
		t.Fatal(err)
	}
	toks := a.Tokens()
	if len(toks) != 1 {
		t.Fatalf("%s: want one API token, got %v", script, toks)
	}
	if err := a.SetTokenSecret(toks[0], "secret"); err != nil {
		t.Fatal(err)
	}
	return a, toks[0] + "=secret"
}

// tokenScript is the README's API token set-up.
func tokenScript(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), "deploy", "proxmox", "token.sh")
}

func sleepShort() { time.Sleep(20 * time.Millisecond) }

// waitBooted waits until VM id's guest runs.
func waitBooted(t *testing.T, s *Sim, id int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); sleepShort() {
		if st, ok := s.VM(id); ok && st.Boot.Booted {
			return
		}
	}
	st, _ := s.VM(id)
	t.Fatalf("VM %d did not boot: %+v", id, st.Boot)
}
