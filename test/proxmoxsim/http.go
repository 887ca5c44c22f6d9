package proxmoxsim

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// apiError is an error answer. Proxmox (pve-http-server) puts the message
// in the HTTP status line and repeats it in the body's "message"; a
// parameter error is 400 "Parameter verification failed." with the
// offending parameters under "errors". bpg reads both (its api client's
// validateResponseCode) and recognises "does not exist" and "already
// exists" in them.
type apiError struct {
	code   int
	msg    string
	params map[string]string
}

func (e *apiError) Error() string {
	if len(e.params) == 0 {
		return e.msg
	}
	b, _ := json.Marshal(e.params)
	return e.msg + " " + string(b)
}

func fail(code int, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// die is Perl's die in an API handler: a 500 with the message.
func die(format string, args ...any) *apiError {
	return fail(http.StatusInternalServerError, format, args...)
}

func paramError(params map[string]string) *apiError {
	return &apiError{code: http.StatusBadRequest, msg: "Parameter verification failed.", params: params}
}

type route struct {
	method string
	re     *regexp.Regexp
	fn     func(s *Sim, m []string, f url.Values) (any, *apiError)
}

var routes []route

func handle(method, pattern string, fn func(s *Sim, m []string, f url.Values) (any, *apiError)) {
	routes = append(routes, route{method, regexp.MustCompile("^/api2/json" + pattern + "$"), fn})
}

// ServeHTTP answers one API call. Calls are served one at a time, as the
// node's state is one: the simulator is not a performance model.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	form := r.Form
	req := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Form: encodeForm(form)}
	data, aerr := s.dispatch(r, form)
	req.Status = http.StatusOK
	if aerr != nil {
		req.Status, req.Error = aerr.code, aerr.Error()
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func (s *Sim) dispatch(r *http.Request, form url.Values) (any, *apiError) {
	if tok := s.opts.Token; tok != "" && r.Header.Get("Authorization") != "PVEAPIToken="+tok {
		return nil, fail(http.StatusUnauthorized, "authentication failure")
	}
	if aerr := s.denied(r.Method, r.URL.Path); aerr != nil {
		return nil, aerr
	}
	for _, rt := range routes {
		if rt.method != r.Method {
			continue
		}
		if m := rt.re.FindStringSubmatch(r.URL.Path); m != nil {
			if len(m) > 1 && m[1] != "" && strings.HasPrefix(r.URL.Path, "/api2/json/nodes/") && m[1] != s.opts.Node {
				return nil, die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", m[1], m[1])
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return rt.fn(s, m, form)
		}
	}
	return nil, fail(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, strings.TrimPrefix(r.URL.Path, "/api2/json"))
}

// writeError writes the status line Proxmox writes, which net/http cannot
// (it always uses the standard reason phrase).
func writeError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"data": nil}
	if len(e.params) > 0 {
		body["errors"] = e.params
	} else {
		body["message"] = e.msg + "\n"
	}
	b, _ := json.Marshal(body)
	reason := strings.SplitN(e.msg, "\n", 2)[0]
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, reason, e.code)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", e.code, reason, len(b), b)
	_ = buf.Flush()
}

func encodeForm(f url.Values) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Join(f[k], "|"))
	}
	return strings.Join(parts, " ")
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
