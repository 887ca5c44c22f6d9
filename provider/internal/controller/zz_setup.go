// homelab-infra's Proxmox provider. Regenerate with `make provider-generate`
// (provider/apis/generate.go); never edit a zz_ file by hand.

package controller

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/crossplane/upjet/v2/pkg/controller"

	providerconfig "github.com/homelab-infra/homelab-infra/provider/internal/controller/providerconfig"
	file "github.com/homelab-infra/homelab-infra/provider/internal/controller/ve/file"
	virtualmachine "github.com/homelab-infra/homelab-infra/provider/internal/controller/ve/virtualmachine"
)

// Setup creates all controllers with the supplied logger and adds them to
// the supplied manager.
func Setup(mgr ctrl.Manager, o controller.Options) error {
	for _, setup := range []func(ctrl.Manager, controller.Options) error{
		providerconfig.Setup,
		file.Setup,
		virtualmachine.Setup,
	} {
		if err := setup(mgr, o); err != nil {
			return err
		}
	}
	return nil
}

// SetupGated creates all controllers with the supplied logger and adds them to
// the supplied manager gated.
func SetupGated(mgr ctrl.Manager, o controller.Options) error {
	for _, setup := range []func(ctrl.Manager, controller.Options) error{
		providerconfig.SetupGated,
		file.SetupGated,
		virtualmachine.SetupGated,
	} {
		if err := setup(mgr, o); err != nil {
			return err
		}
	}
	return nil
}
