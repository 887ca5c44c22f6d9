package clients

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCredentials(t *testing.T) {
	cases := map[string]struct {
		reason  string
		json    string
		want    Credentials
		wantErr string
	}{
		"Full": {
			reason: "every key of crossplane/provider/providerconfig.yaml is read; insecure may be a string, as a Secret's JSON often has it",
			json:   `{"endpoint":"https://pve:8006/","api_token":"u@pve!t=x","insecure":"true","ssh_username":"crossplane","ssh_private_key":"KEY"}`,
			want:   Credentials{Endpoint: "https://pve:8006/", APIToken: "u@pve!t=x", Insecure: true, SSHUsername: "crossplane", SSHPrivateKey: "KEY"},
		},
		"BoolInsecure": {
			reason: "a JSON boolean works too",
			json:   `{"endpoint":"https://pve:8006/","api_token":"t","insecure":false,"ssh_password":"pw","min_tls":"1.3"}`,
			want:   Credentials{Endpoint: "https://pve:8006/", APIToken: "t", SSHPassword: "pw", MinTLS: "1.3"},
		},
		"NotJSON": {
			reason:  "the error says what the key must hold, and never echoes it",
			json:    `endpoint=https://pve secret-token`,
			wantErr: "one flat JSON object",
		},
		"NestedSSH": {
			reason:  "bpg's nested ssh block is not the format: the key is named",
			json:    `{"endpoint":"e","api_token":"t","ssh":{"username":"u"}}`,
			wantErr: `unknown key "ssh"`,
		},
		"Misspelt": {
			reason:  "a misspelt key is named instead of ignored",
			json:    `{"endpoint":"e","apitoken":"t"}`,
			wantErr: `unknown key "apitoken"`,
		},
		"NoToken": {
			reason:  "without a token nothing can be called",
			json:    `{"endpoint":"e"}`,
			wantErr: "endpoint and api_token are required",
		},
		"BadInsecure": {
			reason:  "insecure must be a boolean",
			json:    `{"endpoint":"e","api_token":"t","insecure":"maybe"}`,
			wantErr: `"insecure" must be true or false`,
		},
		"NumberToken": {
			reason:  "a value of the wrong type is named",
			json:    `{"endpoint":"e","api_token":12}`,
			wantErr: `"api_token" must be a string`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCredentials([]byte(tc.json))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nParseCredentials: want an error containing %q, got %v", tc.reason, tc.wantErr, err)
				}
				for _, secret := range []string{"secret-token", "KEY", "pw"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("%s\nthe error shows a secret value: %v", tc.reason, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\nParseCredentials: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nParseCredentials: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestConfiguration(t *testing.T) {
	c := Credentials{Endpoint: "https://pve:8006/", APIToken: "t", Insecure: true, SSHUsername: "u", SSHPrivateKey: "k"}
	want := map[string]any{
		"endpoint": "https://pve:8006/", "api_token": "t", "insecure": true,
		"ssh": []any{map[string]any{"username": "u", "private_key": "k"}},
	}
	if diff := cmp.Diff(want, c.Configuration()); diff != "" {
		t.Errorf("bpg's provider block: -want, +got:\n%s", diff)
	}
}
