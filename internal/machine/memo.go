package machine

import "sync"

// The function validates every claim's flake ref and SSH keys on every
// call, and the same few hundred values come back at every reconcile: the
// regular expressions and the key parsing were a tenth of its CPU per call.
// So the values found valid are remembered. Only valid ones: a value
// refused may be a pasted private key or a ref with a token in it, which
// must not stay in memory any longer than the call that read it.
var (
	validFlakeRefs validSet
	validSSHKeys   validSet
)

// validSetSize bounds a validSet: a fleet's values fit many times over, and
// when full it starts again (a stale answer is never wrong, the check is a
// pure function of the value).
const validSetSize = 4096

// validSet is a set of values a pure check found valid.
type validSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

// valid reports whether check finds v valid (it returns nothing to say
// about it), asking it only for a value not known valid already.
func (s *validSet) valid(v string, check func(string) bool) bool {
	s.mu.Lock()
	_, ok := s.m[v]
	s.mu.Unlock()
	if ok {
		return true
	}
	if !check(v) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= validSetSize {
		s.m = make(map[string]struct{})
	}
	s.m[v] = struct{}{}
	return true
}

// checkFlakeRef is CheckFlakeRef, remembering the valid refs.
func checkFlakeRef(ref string) []string {
	var msgs []string
	validFlakeRefs.valid(ref, func(r string) bool {
		msgs = CheckFlakeRef(r)
		return len(msgs) == 0
	})
	return msgs
}

// checkSSHKey is CheckSSHKey, remembering the valid keys.
func checkSSHKey(k string) string {
	var msg string
	validSSHKeys.valid(k, func(k string) bool {
		msg = CheckSSHKey(k)
		return msg == ""
	})
	return msg
}
