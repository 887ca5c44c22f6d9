package machine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// An admin key is valid exactly when OpenSSH's parser takes it
// (golang.org/x/crypto/ssh) and its declared type is its key data's type:
// sshd ignores any other line, and a VM whose only admin key is ignored has
// no admin. The XRD cannot decode base64, so its rule is SSHKeyPattern: the
// key data's header for each type, written out in base64 (the type encoded
// in the blob, and for fixed-size keys the exact length). That catches a
// type that does not match its data and a line cut short; a character
// changed inside an RSA modulus or an ECDSA point passes the XRD, and the
// function and labctl refuse it with the same field and message.

// sshKeyType is one key type the claim accepts: the wire header its key
// data starts with, and the data's length when every key of the type has
// the same (0: it varies).
type sshKeyType struct {
	name   string
	header []byte
	size   int
}

func header(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// str is the SSH wire encoding of a string (RFC 4251 5).
func str(s string) []byte { return append(u32(uint32(len(s))), s...) }

func u32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// sshKeyTypes are the key types of OpenSSH's ssh-keygen, with their wire
// layout (RFC 8709 for ed25519, RFC 5656 for ECDSA points in uncompressed
// form, PROTOCOL.u2f for the security-key types, RFC 4253 for RSA).
var sshKeyTypes = []sshKeyType{
	{name: ssh.KeyAlgoED25519, header: header(str(ssh.KeyAlgoED25519), u32(32)), size: 4 + 11 + 4 + 32},
	{name: ssh.KeyAlgoECDSA256, header: header(str(ssh.KeyAlgoECDSA256), str("nistp256"), u32(65), []byte{4}), size: 4 + 19 + 4 + 8 + 4 + 65},
	{name: ssh.KeyAlgoECDSA384, header: header(str(ssh.KeyAlgoECDSA384), str("nistp384"), u32(97), []byte{4}), size: 4 + 19 + 4 + 8 + 4 + 97},
	{name: ssh.KeyAlgoECDSA521, header: header(str(ssh.KeyAlgoECDSA521), str("nistp521"), u32(133), []byte{4}), size: 4 + 19 + 4 + 8 + 4 + 133},
	{name: ssh.KeyAlgoSKED25519, header: header(str(ssh.KeyAlgoSKED25519), u32(32))},
	{name: ssh.KeyAlgoSKECDSA256, header: header(str(ssh.KeyAlgoSKECDSA256), str("nistp256"), u32(65), []byte{4})},
	{name: ssh.KeyAlgoRSA, header: str(ssh.KeyAlgoRSA)},
}

// SSHKeyPattern is one authorized_keys line as the claim takes it: a type,
// one space, the base64 key data of that type, and an optional comment.
// crossplane/xrd.yaml carries it in its CEL rule (TestXRDMatchesModel).
var SSHKeyPattern = sshKeyPattern()

// MsgSSHKey is what is wrong with a key line that is not one valid public
// key; the XRD's rule says the same.
const MsgSSHKey = "is not one valid OpenSSH public key line (type, key data, optional comment, as in a .pub file): a line cut short or changed in a paste, or a type that does not match its key data, would be ignored by sshd and lock the admin out; paste the .pub file's line again"

func sshKeyPattern() string {
	alts := make([]string, len(sshKeyTypes))
	for i, t := range sshKeyTypes {
		alts[i] = strings.ReplaceAll(t.name, ".", `\.`) + " " + base64Pattern(t.header, t.size)
	}
	return `^(` + strings.Join(alts, "|") + `)( [^\r\n]*)?$`
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// base64Pattern matches the standard, padded base64 of data that starts with
// prefix and is size bytes long, or, with size 0, of any length past the
// prefix. Each character holds 6 bits: those wholly in the prefix are
// fixed, the one that straddles its end is a class, the rest are free.
func base64Pattern(prefix []byte, size int) string {
	bit := func(i int) byte { return prefix[i/8] >> (7 - i%8) & 1 }
	nbits := 8 * len(prefix)
	var b strings.Builder
	chars := 0
	for ; 6*chars < nbits; chars++ {
		fixed := min(6, nbits-6*chars)
		v := 0
		for j := 0; j < fixed; j++ {
			v = v<<1 | int(bit(6*chars+j))
		}
		free := 6 - fixed
		if free == 0 {
			b.WriteString(regexpChar(b64[v]))
			continue
		}
		b.WriteString("[" + b64[v<<free:(v+1)<<free] + "]")
	}
	const char = `[A-Za-z0-9+/]`
	if size > 0 {
		data := (8*size + 5) / 6
		pad := (4 - data%4) % 4
		fmt.Fprintf(&b, "%s{%d}%s", char, data-chars, strings.Repeat("=", pad))
		return b.String()
	}
	if fill := (4 - chars%4) % 4; fill > 0 {
		fmt.Fprintf(&b, "%s{%d}", char, fill)
	}
	b.WriteString("(" + char + "{4})*(" + char + "{2}==|" + char + "{3}=)?")
	return b.String()
}

func regexpChar(c byte) string {
	if c == '+' || c == '/' {
		return `\` + string(c)
	}
	return string(c)
}

// CheckSSHKey returns what is wrong with one authorized_keys line, or "".
// It never includes the line itself in its answer: a pasted private key
// must not end up in events, logs or CI output.
func CheckSSHKey(k string) string {
	switch {
	case strings.TrimSpace(k) == "":
		return "is empty; paste a public key such as ssh-ed25519 AAAA... you@host"
	case utf8.RuneCountInString(k) > MaxSSHKeyLen:
		// The XRD's maxLength counts characters, as the API server does.
		return fmt.Sprintf("is longer than %d characters; paste one public key line", MaxSSHKeyLen)
	case strings.Contains(k, "PRIVATE KEY"):
		return "is a PRIVATE key; remove it from the claim at once (and rotate it), then paste the matching public key (the .pub file)"
	case !sshKeyRE().MatchString(k):
		return MsgSSHKey
	}
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(k))
	if err != nil || len(options) > 0 || len(bytes.TrimSpace(rest)) > 0 || key.Type() != k[:strings.IndexByte(k, ' ')] {
		return MsgSSHKey
	}
	return ""
}
