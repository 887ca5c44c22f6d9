package metrics

import (
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// The secrets stage's metrics: times, counts and names, never a value.
var (
	descSecretsUp          = gaugeFamily("nix_gitops_secrets_up", "1 when the last secrets run fetched and placed every declared secret.")
	descSecretsLastSuccess = gaugeFamily("nix_gitops_secrets_last_success_timestamp_seconds", "When every declared secret was last fetched and in place.")
	descVaultReachable     = gaugeFamily("nix_gitops_vault_reachable", "0 while the last secrets run could not reach Vault.")
	descVaultTokenExpiry   = gaugeFamily("nix_gitops_vault_token_expiry_timestamp_seconds", "When the cached Vault token expires.")
	descVaultLogins        = counterFamily("nix_gitops_vault_logins_total", "AppRole logins (a valid cached token needs none).")
	descVaultRenewals      = counterFamily("nix_gitops_vault_token_renewals_total", "Renewals of the Vault token.")
	descSecretChanges      = counterFamily("nix_gitops_secret_changes_total", "Secret files written with a new value.")
	descSecretRestarts     = counterFamily("nix_gitops_secret_unit_restarts_total", "Units restarted because a secret they declared changed.")
	descSecretFailures     = counterFamily("nix_gitops_secrets_failures_total", "Secrets runs that failed.")
	descSecretInfo         = gaugeFamily("nix_gitops_secret_info", "A declared secret (value 1; 0 while it cannot be fetched).", "name", "kind", "source")
	descSecretExpiry       = gaugeFamily("nix_gitops_secret_certificate_expiry_timestamp_seconds", "When a PKI secret's certificate expires.", "name")
)

func renderSecrets(out *samples, s *state.Secrets) {
	if s == nil {
		return
	}
	gauge := out.add
	counter := func(f *family, v int64) { out.add(f, float64(v)) }
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	gauge(descSecretsUp, b(s.Error == ""))
	if !s.LastSuccess.IsZero() {
		gauge(descSecretsLastSuccess, float64(s.LastSuccess.UnixMilli())/1000)
	}
	gauge(descVaultReachable, b(s.VaultReachable))
	if !s.TokenExpires.IsZero() {
		gauge(descVaultTokenExpiry, float64(s.TokenExpires.Unix()))
	}
	counter(descVaultLogins, s.Logins)
	counter(descVaultRenewals, s.Renewals)
	counter(descSecretChanges, s.Changes)
	counter(descSecretRestarts, s.Restarts)
	counter(descSecretFailures, s.Failures)
	for name, it := range s.Items {
		gauge(descSecretInfo, b(it.Error == ""), name, it.Kind, it.Source)
		if !it.NotAfter.IsZero() {
			gauge(descSecretExpiry, float64(it.NotAfter.Unix()), name)
		}
	}
}
