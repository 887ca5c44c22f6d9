package proxmoxsim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestStartRefusedForMemory: a node that cannot map a guest's memory fails
// its start task as vm_start_nolock does (QEMU's message in the task log,
// "start failed: QEMU exited with code 1" as the exit status); the VM stays
// stopped, and starts once it asks for less, or once the node has more.
func TestStartRefusedForMemory(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason   string
		memory   string // the VM's memory option
		nodeMiB  int64  // Node.MemoryMiB
		afterMiB int64  // the node's memory for a second start, 0: unchanged
		want     string // the first start's exit status
	}{
		"Fits": {
			reason: "a guest the node can map starts", memory: "2048", nodeMiB: 3072, want: "OK",
		},
		"NoLimit": {
			reason: "without a limit every start maps its memory", memory: "65536", want: "OK",
		},
		"TooBig": {
			reason: "QEMU cannot map more than the node gives", memory: "4096", nodeMiB: 3072,
			want: "start failed: QEMU exited with code 1",
		},
		"TooBigThenMore": {
			reason: "the same VM starts once the node has the memory", memory: "4096", nodeMiB: 3072, afterMiB: 8192,
			want: "start failed: QEMU exited with code 1",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, func(o *Options) { o.Nodes = []Node{{Name: "pve1", MemoryMiB: tc.nodeMiB}} })
			clone(t, s, "1053")
			ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"memory": {tc.memory}})
			upid := upidOf(t, do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil))
			if got := waitTask(t, s, upid); got != tc.want {
				t.Fatalf("%s: start's exit status: want %q, got %q", tc.reason, tc.want, got)
			}
			if tc.want == "OK" {
				return
			}
			log := string(do(t, s, http.MethodGet, "/nodes/pve1/tasks/"+upid+"/log", nil).Data)
			if !strings.Contains(log, "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory") {
				t.Errorf("%s: the task log should hold QEMU's message, got %s", tc.reason, log)
			}
			if st := vmState(t, s, 1053); st.Status != "stopped" || st.Starts != 0 {
				t.Errorf("%s: want the VM stopped, never started; got %s after %d starts", tc.reason, st.Status, st.Starts)
			}
			if tc.afterMiB == 0 {
				return
			}
			if err := s.SetNodeMemory("pve1", tc.afterMiB); err != nil {
				t.Fatal(err)
			}
			ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
			if st := vmState(t, s, 1053); st.Status != "running" || st.Boot.MemoryMiB != 4096 {
				t.Errorf("%s: want it running with 4096 MiB, got %s with %d", tc.reason, st.Status, st.Boot.MemoryMiB)
			}
		})
	}
}

// TestResizeOutOfSpace: a disk on a thick LVM volume group grows only into
// its free extents (the resize task fails with LVMPlugin's and lvextend's
// message, the disk keeping its size), and grows once the group is
// extended; a thin pool lets its volumes grow past its size, as LVM does.
func TestResizeOutOfSpace(t *testing.T) {
	t.Parallel()
	const gib = int64(1) << 30
	cases := map[string]struct {
		reason  string
		storage Storage
		after   int64 // the volume group's size for a second resize, 0: none
		want    string
	}{
		"Fits": {
			reason:  "8 GiB copied, 24 GiB more fit into 40 GiB",
			storage: Storage{ID: "vmdata", Type: "lvm", VG: "vmdata", Content: []string{"images"}, Size: 40 * gib},
			want:    "OK",
		},
		"Full": {
			// 12 GiB is 3072 extents, the copy and the cloud-init drive
			// take 2048 and 1: 6144 more are needed for 32 GiB.
			reason:  "24 GiB more do not fit into the 4 GiB the 12 GiB group has left",
			storage: Storage{ID: "vmdata", Type: "lvm", VG: "vmdata", Content: []string{"images"}, Size: 12 * gib},
			want:    "error resizing volume '/dev/vmdata/vm-1053-disk-0':   Insufficient free space: 6144 extents needed, but only 1023 available",
		},
		"FullThenExtended": {
			reason:  "once the group is extended, the same disk grows",
			storage: Storage{ID: "vmdata", Type: "lvm", VG: "vmdata", Content: []string{"images"}, Size: 12 * gib},
			after:   40 * gib,
			want:    "error resizing volume '/dev/vmdata/vm-1053-disk-0':   Insufficient free space: 6144 extents needed, but only 1023 available",
		},
		"Thin": {
			reason:  "a thin volume's size is not taken from its pool",
			storage: Storage{ID: "vmdata", Type: "lvmthin", Content: []string{"images"}, Size: 12 * gib},
			want:    "OK",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, func(o *Options) {
				o.Storages = []Storage{
					{ID: "local", Type: "dir", Content: []string{"snippets"}},
					{ID: imageStorage, Type: "lvmthin", Content: []string{"images"}},
					tc.storage,
				}
			})
			ok(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {"1053"}, "full": {"1"}, "storage": {"vmdata"}})
			upid := upidOf(t, do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/resize", url.Values{"disk": {"virtio0"}, "size": {"32G"}}))
			if got := waitTask(t, s, upid); got != tc.want {
				t.Fatalf("%s: resize's exit status:\nwant %q\ngot  %q", tc.reason, tc.want, got)
			}
			wantSize := 32 * gib
			if tc.want != "OK" {
				wantSize = 8 * gib
			}
			if got := vmState(t, s, 1053).Disks["virtio0"]; got != wantSize {
				t.Errorf("%s: want the disk at %d GiB, got %d bytes", tc.reason, wantSize/gib, got)
			}
			if tc.after == 0 {
				return
			}
			if err := s.SetStorageSize("pve1", "vmdata", tc.after); err != nil {
				t.Fatal(err)
			}
			ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/resize", url.Values{"disk": {"virtio0"}, "size": {"32G"}})
			if got := vmState(t, s, 1053).Disks["virtio0"]; got != 32*gib {
				t.Errorf("%s: after vgextend want the disk at 32 GiB, got %d bytes", tc.reason, got)
			}
		})
	}
}
