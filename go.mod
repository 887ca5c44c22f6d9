module github.com/homelab-infra/homelab-infra

go 1.25.0
