package proxmoxsim

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer. Proxmox (pve-manager PVE/HTTPServer.pm at
// 46095dd4a59525dca70df9508db8dcf87f7160c5, rest_handler) answers a
// PVE::Exception with its code and message, and a parameter exception with
// its errors; pve-http-server puts the message in the HTTP status line
// (src/PVE/APIServer/AnyEvent.pm) and the JSON formatter writes the body
// {"data": null} plus "errors" when there are any
// (src/PVE/APIServer/Formatter/Standard.pm at
// f8f97c8d26d3312b1553095b5eca389ae63c7716, prepare_response_data). A
// parameter error is 400 "Parameter verification failed." with the
// offending parameters under "errors", a missing privilege 403
// "Permission check failed (...)", a die in the handler 500 with its text.
// bpg reads both the status line and the body (its api client's
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

// call is one authenticated, permitted and validated API call.
type call struct {
	// who is the API token that made it (user@realm!name).
	who string
	// params are the URI placeholders and the parameters.
	params map[string]string
	ep     *Endpoint
}

func (c *call) get(k string) string { return c.params[k] }

func (c *call) has(k string) bool { _, ok := c.params[k]; return ok }

func (c *call) vmid() int { n, _ := strconv.Atoi(c.params["vmid"]); return n }

type handler func(s *Sim, c *call) (any, *apiError)

// handlers are the simulated methods, by "METHOD /schema/path".
var handlers = map[string]handler{}

func handle(method, path string, fn handler) { handlers[method+" "+path] = fn }

// ServeHTTP answers one API call. Calls are served one at a time, as the
// cluster's state is one: the simulator is not a performance model.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	req := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Form: encodeForm(r.Form)}
	data, who, aerr := s.dispatch(r)
	req.Who, req.Status = who, http.StatusOK
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

// dispatch follows rest_handler: find the method (501 "Method '<M> <uri>'
// not implemented" when the release has none), merge the URI's
// placeholders with the parameters (a parameter repeating one is refused),
// check the method's permissions (before the parameters are validated, as
// rest_handler does), resolve the node the call is proxied to, then
// validate the parameters against the schema (PVE::RESTHandler::handle)
// and run the handler.
func (s *Sim) dispatch(r *http.Request) (any, string, *apiError) {
	who, ok := s.access.authenticate(r.Header.Get("Authorization"))
	if !ok {
		return nil, "", fail(http.StatusUnauthorized, "authentication failure")
	}
	rel := strings.TrimPrefix(r.URL.EscapedPath(), "/api2/json")
	ep, uri, _ := s.api.Lookup(r.Method, rel)
	if ep == nil {
		return nil, who, fail(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, strings.TrimPrefix(r.URL.Path, "/api2/json"))
	}
	params := uri
	for k, vals := range r.Form {
		if _, dup := uri[k]; dup {
			return nil, who, paramError(map[string]string{k: "duplicate parameter (already defined in URI)"})
		}
		params[k] = strings.Join(vals, "\x00")
	}
	c := &call{who: who, params: params, ep: ep}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.access.checkAPI2(ep.Permissions, who, params); err != nil {
		return nil, who, err
	}
	if ep.ProxyTo != "" {
		if n := params[ep.ProxyTo]; s.nodes[n] == nil {
			// PVE::Cluster::remote_node_ip falls back to a DNS lookup.
			return nil, who, die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", n, n)
		}
	}
	if e := s.valid.validateParams(ep.Parameters, params); len(e) > 0 {
		return nil, who, paramError(e)
	}
	fn := handlers[ep.Method+" "+ep.Path]
	if fn == nil {
		return nil, who, fail(http.StatusNotImplemented, "proxmoxsim: %s %s (%s) is not simulated", ep.Method, ep.Path, ep.Name)
	}
	data, err := fn(s, c)
	return data, who, err
}

// writeError writes the status line Proxmox writes, which net/http cannot
// (it always uses the standard reason phrase).
func writeError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"data": nil}
	if len(e.params) > 0 {
		body["errors"] = e.params
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

func encodeForm(f map[string][]string) string {
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
