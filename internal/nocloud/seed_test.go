package nocloud

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"
)

func TestWriteISO(t *testing.T) {
	seed := Seed{
		UserData:      []byte("#cloud-config\nhostname: dns01\n"),
		MetaData:      []byte("instance-id: 0123\n"),
		NetworkConfig: []byte("version: 1\nconfig: []\n"),
	}
	var b bytes.Buffer
	if err := WriteISO(&b, seed); err != nil {
		t.Fatalf("WriteISO: %v", err)
	}
	img, err := iso9660.OpenImage(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("cannot read back the seed: %v", err)
	}
	label, err := img.Label()
	if err != nil {
		t.Fatal(err)
	}
	if label != VolumeLabel {
		t.Errorf("volume label: want %q (what NoCloud looks for), got %q", VolumeLabel, label)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range children {
		data, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		// Linux shows ISO 9660 names without the ";1" version, as cloud-init reads them.
		got[strings.TrimSuffix(c.Name(), ";1")] = string(data)
	}
	want := map[string]string{
		"user-data":      string(seed.UserData),
		"meta-data":      string(seed.MetaData),
		"network-config": string(seed.NetworkConfig),
		"vendor-data":    "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed files: -want, +got:\n%s", diff)
	}
}

func TestWriteISORefusesEmpty(t *testing.T) {
	err := WriteISO(io.Discard, Seed{UserData: []byte("#cloud-config\n")})
	if err == nil || !strings.Contains(err.Error(), "meta-data") {
		t.Errorf("a seed without meta-data is ignored by cloud-init, so WriteISO must refuse it naming meta-data; got %v", err)
	}
}
