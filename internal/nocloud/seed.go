package nocloud

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/kdomanski/iso9660"
)

// VolumeLabel is the label cloud-init's NoCloud datasource looks for.
const VolumeLabel = "cidata"

// Seed is the content of a NoCloud drive. Proxmox writes all four files,
// vendor-data empty when no vendor snippet is set.
type Seed struct {
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte
	VendorData    []byte
}

// WriteISO writes s as an ISO 9660 image labelled cidata, the drive Proxmox
// attaches to a VM with a nocloud cloud-init drive.
func WriteISO(w io.Writer, s Seed) error {
	if len(s.UserData) == 0 || len(s.MetaData) == 0 {
		return errors.New("cannot write the seed: user-data and meta-data are required (cloud-init ignores a seed without them)")
	}
	iw, err := iso9660.NewWriter()
	if err != nil {
		return fmt.Errorf("cannot start the seed image: %w", err)
	}
	// The writer stages files in a temporary folder; remove it whatever happens.
	defer iw.Cleanup() //nolint:errcheck // best effort; the image is already written or failed.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"user-data", s.UserData},
		{"meta-data", s.MetaData},
		{"network-config", s.NetworkConfig},
		{"vendor-data", s.VendorData},
	} {
		if err := iw.AddFile(bytes.NewReader(f.data), f.name); err != nil {
			return fmt.Errorf("cannot add %s to the seed: %w", f.name, err)
		}
	}
	if err := iw.WriteTo(w, VolumeLabel); err != nil {
		return fmt.Errorf("cannot write the seed image: %w", err)
	}
	return nil
}
