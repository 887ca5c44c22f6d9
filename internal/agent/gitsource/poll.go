package gitsource

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// errNotV2 means the server did not answer a protocol-v2 ls-refs request;
// the caller falls back to `git ls-remote`.
var errNotV2 = errors.New("no protocol v2 ls-refs answer")

// Traffic counts the bytes the in-process poller sent and received on the
// wire (headers included), for the benchmarks.
var Traffic struct{ In, Out atomic.Int64 }

// httpPoller looks up refs with a single smart-HTTP protocol-v2
// "ls-refs" request (one ref-prefix line per ref, so a machine in rollout
// mode reads its deploy and reboot refs in the one round trip of a plain
// poll) (git's gitprotocol-v2: stateless over HTTP, so no
// capability round trip is needed) and keeps the connection alive between
// polls. This is the "ref lookup in process" design D5 allows for the poll
// alone: comin polls with go-git; spawning git ls-remote costs two
// processes and far more CPU per tick. Fetch, verify and build stay on git.
type httpPoller struct {
	url       string
	user      string
	tokenFile string
	client    *http.Client
}

func newHTTPPoller(r flakeref.Ref, a config.Auth) *httpPoller {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c}, nil
		},
		MaxIdleConns:        1,
		IdleConnTimeout:     10 * time.Minute,
		TLSHandshakeTimeout: 15 * time.Second,
		DisableCompression:  true,
	}
	return &httpPoller{
		url:       strings.TrimSuffix(r.Remote, "/") + "/git-upload-pack",
		user:      a.TokenUser,
		tokenFile: a.TokenFile,
		client:    &http.Client{Transport: tr},
	}
}

type countingConn struct{ net.Conn }

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	Traffic.In.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	Traffic.Out.Add(int64(n))
	return n, err
}

func pkt(b *bytes.Buffer, s string) { fmt.Fprintf(b, "%04x%s", len(s)+4, s) }

// lookup returns the commit of each of refs the remote has (full names, or
// HEAD); a ref the remote lacks is absent from the map.
func (p *httpPoller) lookup(ctx context.Context, timeout time.Duration, refs []string) (map[string]string, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var body bytes.Buffer
	// The smallest valid request: every byte counts on a tick that runs
	// every few minutes on every machine.
	pkt(&body, "command=ls-refs\n")
	body.WriteString("0001")
	if slices.Contains(refs, "HEAD") {
		pkt(&body, "symrefs\n")
	}
	for _, ref := range refs {
		pkt(&body, "ref-prefix "+ref+"\n")
	}
	body.WriteString("0000")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("cannot make the poll request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	req.Header.Set("Git-Protocol", "version=2")
	req.Header.Set("User-Agent", "git/nix-gitops")
	if p.tokenFile != "" {
		tok, err := os.ReadFile(p.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the token file: %w", err)
		}
		req.SetBasicAuth(p.user, string(bytes.TrimSpace(tok)))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// Never echo the request: the URL holds no secret, but be plain.
		return nil, fmt.Errorf("cannot reach the remote: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w (HTTP %d): check auth.tokenFile and auth.tokenUser", ErrDenied, resp.StatusCode)
	case resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-git-upload-pack-result":
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode >= 500 {
			return nil, fmt.Errorf("the remote failed (HTTP %d)", resp.StatusCode)
		}
		return nil, fmt.Errorf("%w: HTTP %d, %q", errNotV2, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(io.LimitReader(resp.Body, 1<<20))
	found := map[string]string{}
	for {
		line, flush, err := readPkt(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNotV2, err)
		}
		if flush {
			break
		}
		// "<oid> <refname>[ symref-target:…][ peeled:…]"
		f := strings.Fields(line)
		if len(f) < 2 || !shaRE.MatchString(f[0]) {
			return nil, fmt.Errorf("%w: unexpected line %q", errNotV2, line)
		}
		if slices.Contains(refs, f[1]) {
			found[f[1]] = f[0]
		}
	}
	_, _ = io.Copy(io.Discard, br) // let the connection be reused
	return found, nil
}

// readPkt reads one pkt-line; flush is true for "0000".
func readPkt(r *bufio.Reader) (line string, flush bool, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", false, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return "", false, fmt.Errorf("bad pkt-line length %q", hdr[:])
	}
	if n == 0 {
		return "", true, nil
	}
	if n < 4 {
		return "", false, fmt.Errorf("unexpected special pkt-line %q", hdr[:])
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", false, err
	}
	return strings.TrimSuffix(string(buf), "\n"), false, nil
}
