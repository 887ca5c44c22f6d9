// Package machinetest holds test helpers for the Machine model's users.
package machinetest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// KeyLines makes one authorized_keys line of each type the claim takes,
// from real keys (the security-key types by their wire layout, as
// PROTOCOL.u2f gives it: no hardware here).
func KeyLines(t testing.TB) map[string]string {
	t.Helper()
	line := func(pub any) string {
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " ops@workstation"
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{"ssh-ed25519": line(edPub), "ssh-rsa": line(&rsaKey.PublicKey)}
	for name, c := range map[string]elliptic.Curve{"ecdsa-sha2-nistp256": elliptic.P256(), "ecdsa-sha2-nistp384": elliptic.P384(), "ecdsa-sha2-nistp521": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		lines[name] = line(&k.PublicKey)
	}
	str := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	skEd := append(str([]byte(ssh.KeyAlgoSKED25519)), str(edPub)...)
	skEd = append(skEd, str([]byte("ssh:"))...)
	lines["sk-ssh-ed25519@openssh.com"] = ssh.KeyAlgoSKED25519 + " " + base64.StdEncoding.EncodeToString(skEd) + " ops@yubikey"
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdh, err := p256.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	skEC := append(str([]byte(ssh.KeyAlgoSKECDSA256)), str([]byte("nistp256"))...)
	skEC = append(skEC, str(ecdh.Bytes())...)
	skEC = append(skEC, str([]byte("ssh:"))...)
	lines["sk-ecdsa-sha2-nistp256@openssh.com"] = ssh.KeyAlgoSKECDSA256 + " " + base64.StdEncoding.EncodeToString(skEC) + " ops@yubikey"
	return lines
}
