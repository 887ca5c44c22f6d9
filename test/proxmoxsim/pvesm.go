package proxmoxsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// The README's storage step (adding the snippets content type) runs here as
// a user runs it, as root on a node. RunAsRoot runs such a snippet with
// bash, as written, with stand-ins for the two Proxmox CLIs it calls, since
// neither can run here:
//
//   - pvesh get <path> --output-format json prints what GET <path> answers
//     root when the snippet starts, as pvesh prints its json format: one
//     line, keys sorted (pve-common src/PVE/CLIFormatter.pm at
//     ac6c61bf135f4e0bb261c4b95cec2071677da99e, print_api_result: to_json
//     with canonical => 1). Only GET /storage/{storage} is answered;
//   - pvesm records its arguments (one call a file) and exits 0. Each
//     recorded call is then applied in order as the API method behind it:
//     pve-storage src/PVE/CLI/pvesm.pm at
//     a2242b41fceb293c642cd739586f513d95a19b76, $cmddef: set is
//     PVE::API2::Storage::Config update (PUT /storage/{storage}) with the
//     storage positional; its options parsed as pveum's are
//     (getOptions) and validated against the release's schema.
//
// A call the stand-ins cannot answer fails RunAsRoot; as with
// RunPveumScript, the snippet must not branch on pvesm's exit status.
func (s *Sim) RunAsRoot(snippet string) error {
	dir, err := os.MkdirTemp("", "proxmoxsim-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, calls, get := filepath.Join(dir, "bin"), filepath.Join(dir, "calls"), filepath.Join(dir, "get")
	for _, d := range []string{bin, calls, filepath.Join(get, "storage")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for id, st := range s.storages {
		b, err := json.Marshal(s.storageConfig(st))
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if err := os.WriteFile(filepath.Join(get, "storage", id), append(b, '\n'), 0o644); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	stubs := map[string]string{
		"pvesh": `#!/bin/sh
if [ "$1" != get ] || [ "$3" != --output-format ] || [ "$4" != json ] || [ ! -f "$PROXMOXSIM_GET$2" ]; then
  echo "proxmoxsim: pvesh $* is not simulated" | tee -a "$PROXMOXSIM_UNANSWERED" >&2
  exit 255
fi
cat "$PROXMOXSIM_GET$2"
`,
		"pvesm": `#!/bin/sh
n=$(ls "$PROXMOXSIM_CALLS" | wc -l)
f="$PROXMOXSIM_CALLS/$(printf '%06d' "$n")"
for a in "$@"; do printf '%s\0' "$a"; done > "$f"
`,
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	unanswered := filepath.Join(dir, "unanswered")
	cmd := exec.Command("bash", "-c", snippet)
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"PROXMOXSIM_GET=" + get,
		"PROXMOXSIM_CALLS=" + calls,
		"PROXMOXSIM_UNANSWERED=" + unanswered,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the snippet failed: %w\n%s", err, out.String())
	}
	if b, err := os.ReadFile(unanswered); err == nil {
		return fmt.Errorf("%s", bytes.TrimSpace(b))
	}
	entries, err := os.ReadDir(calls)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(calls, e.Name()))
		if err != nil {
			return err
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if err := s.pvesm(args...); err != nil {
			return fmt.Errorf("pvesm %s: %w", strings.Join(args, " "), err)
		}
	}
	return nil
}

// pvesm applies one pvesm call as root.
func (s *Sim) pvesm(args ...string) error {
	if len(args) == 0 || args[0] != "set" {
		return fmt.Errorf("proxmoxsim: only pvesm set is simulated")
	}
	ep := s.api.Endpoint(http.MethodPut, "/storage/{storage}")
	if ep == nil {
		return fmt.Errorf("no such API method PUT /storage/{storage} in Proxmox VE %s", s.api.Version)
	}
	params, err := getOptions(ep.Parameters, args[1:], []string{"storage"})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.valid.validateParams(ep.Parameters, params); len(e) > 0 {
		return paramError(e)
	}
	if _, aerr := s.updateStorage(&call{who: "root@pam", params: params, ep: ep}); aerr != nil {
		return aerr
	}
	return nil
}

// updateStorage is PUT /storage/{storage} (pve-storage
// src/PVE/API2/Storage/Config.pm at 0b1331ccda6d1604147a8161137091af949c580c,
// update): each option given replaces the storage's value, so content is
// the list given, not added to the one the storage has. Only content is
// simulated.
func (s *Sim) updateStorage(c *call) (any, *apiError) {
	id := c.get("storage")
	st, ok := s.storages[id]
	if !ok {
		return nil, die("storage '%s' does not exist", id)
	}
	for k := range c.params {
		if k != "storage" && k != "content" {
			return nil, fail(http.StatusNotImplemented, "proxmoxsim: storage option %s is not simulated", k)
		}
	}
	if c.has("content") {
		var content []string
		for _, t := range strings.Split(c.get("content"), ",") {
			if t = strings.TrimSpace(t); t != "" {
				content = append(content, t)
			}
		}
		sort.Strings(content)
		st.Content = content
		s.storages[id] = st
	}
	return map[string]any{"storage": id, "type": st.Type}, nil
}

func init() {
	handle(http.MethodPut, "/storage/{storage}", (*Sim).updateStorage)
}

// SetStorageSize sets the size of lvm storage id's volume group on node
// (Storage.Size), as an administrator who adds a disk to it (pvcreate,
// vgextend) or takes one away does.
func (s *Sim) SetStorageSize(node, id string, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.storages[id]
	if !ok || s.nodes[node] == nil {
		return fmt.Errorf("no storage %s on node %s", id, node)
	}
	if st.Type != "lvm" {
		return fmt.Errorf("storage %s is %s; only an lvm volume group has a size here", id, st.Type)
	}
	s.sizes[[2]string{node, id}] = size
	return nil
}

// lvmExtent is LVM's default physical extent size (vgcreate -s 4M).
const lvmExtent = 4 << 20

// lvmFreeExtents is how many extents lvm storage id has free on node, and
// false when it has no size limit (or is no lvm storage).
func (s *Sim) lvmFreeExtents(node, id string) (int64, bool) {
	st := s.storages[id]
	size := s.sizes[[2]string{node, id}]
	if st.Type != "lvm" || size <= 0 {
		return 0, false
	}
	used := int64(0)
	for volid, vol := range s.volumes {
		if sid, _, _ := strings.Cut(volid, ":"); sid == id && (st.Shared || vol.node == node) {
			used += extents(vol.size)
		}
	}
	return size/lvmExtent - used, true
}

// extents is how many extents an LV of size bytes takes (rounded up).
func extents(size int64) int64 { return (size + lvmExtent - 1) / lvmExtent }

// vgName is an lvm or lvmthin storage's volume group.
func vgName(st Storage) string { return or(st.VG, "pve") }
