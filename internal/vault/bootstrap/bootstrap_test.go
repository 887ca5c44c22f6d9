package bootstrap

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	in := File{Role: "dns01", WrappingToken: "hvs.CAESIabc", Expires: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("(-want, +got):\n%s", diff)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := map[string]struct {
		reason, in, want string
	}{
		"NotJSON":   {"garbage", "hvs.abc", "not a JSON object"},
		"BadRole":   {"a role Vault would not accept", `{"role": "dns 01", "wrappingToken": "hvs.a"}`, `role "dns 01"`},
		"NoToken":   {"no token", `{"role": "dns01"}`, "wrappingToken is empty"},
		"Unknown":   {"an unknown key", `{"role": "dns01", "wrappingToken": "hvs.a", "secretId": "s"}`, "not a JSON object"},
		"TokenJunk": {"a token with quotes", `{"role": "dns01", "wrappingToken": "hvs.a\" b"}`, "not a Vault token"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s\nParse(%s): %v, want an error saying %q", tc.reason, tc.in, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hvs.") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}
