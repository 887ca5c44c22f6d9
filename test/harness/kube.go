package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// startKube starts etcd and kube-apiserver, and makes the clients.
func (cp *ControlPlane) startKube(ctx context.Context) error {
	pki := filepath.Join(cp.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return fmt.Errorf("cannot create pki folder: %w", err)
	}
	ca, err := NewCA("homelab-e2e-kubernetes-ca")
	if err != nil {
		return err
	}
	bind, serviceCIDR := "127.0.0.1", "10.96.0.0/24"
	if cp.cfg.InCluster {
		if cp.ClusterIP, serviceCIDR, err = cp.serviceRange(); err != nil {
			return err
		}
		bind = cp.ClusterIP
	}
	servingCert, servingKey, err := ca.Issue(CertSpec{
		CommonName: "kube-apiserver",
		Hosts:      []string{bind, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		Server:     true,
	})
	if err != nil {
		return err
	}
	// system:masters bypasses RBAC: the tests and the controllers act as the
	// cluster's administrator, as a kind cluster's kubeconfig does.
	adminCert, adminKey, err := ca.Issue(CertSpec{CommonName: "homelab-e2e-admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt": ca.CertPEM, "apiserver.crt": servingCert, "apiserver.key": servingKey,
		"admin.crt": adminCert, "admin.key": adminKey, "sa.key": saKey, "sa.pub": saPub,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return fmt.Errorf("cannot write %s: %w", name, err)
		}
	}

	ports, err := testenv.FreePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	if cp.cfg.InCluster {
		apiPort = 443 // the kubernetes Service's port, which pods are told
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd, err := cp.start("etcd", cp.baseEnv(), filepath.Join(cp.cfg.ToolsBin, "etcd"),
		"--name=e2e",
		"--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
		// A test cluster's data is thrown away; fsync only costs time.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	err = poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health")
	}, etcd)
	if err != nil {
		return fmt.Errorf("cannot reach etcd: %w", err)
	}

	api, err := cp.start("kube-apiserver", cp.baseEnv(), filepath.Join(cp.cfg.ToolsBin, "kube-apiserver"),
		"--etcd-servers="+clientURL,
		"--bind-address="+bind,
		"--advertise-address="+bind,
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+pki,
		"--tls-cert-file="+filepath.Join(pki, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(pki, "apiserver.key"),
		"--client-ca-file="+filepath.Join(pki, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		// No Service traffic is ever routed here, so the apiserver need not
		// keep an Endpoints object for itself.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	)
	if err != nil {
		return err
	}

	host := "https://" + bind + ":" + strconv.Itoa(apiPort)
	cp.REST = &rest.Config{
		Host: host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: ca.CertPEM, CertData: adminCert, KeyData: adminKey,
		},
		// The tests apply hundreds of objects; the default 5 QPS would make
		// the client, not the cluster, the bottleneck.
		QPS:   200,
		Burst: 400,
		// Deprecation warnings (XRD v1) would go to controller-runtime's
		// logger; the components' own logs carry what matters.
		WarningHandler: rest.NoWarnings{},
	}
	if err := cp.writeKubeconfig(ca.CertPEM, adminCert, adminKey); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(cp.REST)
	if err != nil {
		return fmt.Errorf("cannot make an HTTP client for the apiserver: %w", err)
	}
	err = poll(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, hc, host+"/readyz")
	}, etcd, api)
	if err != nil {
		return fmt.Errorf("cannot reach kube-apiserver: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("cannot build the client scheme: %w", err)
	}
	cp.Client, err = client.New(cp.REST, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("cannot create the Kubernetes client: %w", err)
	}
	return nil
}

// writeKubeconfig writes an admin kubeconfig: Crossplane and the
// controller-manager read it, and so can a developer with kubectl
// (HARNESS_KEEP=1 keeps it).
func (cp *ControlPlane) writeKubeconfig(caPEM, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.REST.Host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin"}
	cfg.CurrentContext = "e2e"
	cp.Kubeconfig = filepath.Join(cp.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, cp.Kubeconfig); err != nil {
		return fmt.Errorf("cannot write kubeconfig: %w", err)
	}
	return nil
}

// installProviderCRDs creates the provider's CRDs and waits until the
// apiserver serves them.
func (cp *ControlPlane) installProviderCRDs(ctx context.Context) error {
	if cp.cfg.ProviderCRDsDir == "" {
		return nil
	}
	paths, err := filepath.Glob(filepath.Join(cp.cfg.ProviderCRDsDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		return fmt.Errorf("cannot find CRDs in %s: %v", cp.cfg.ProviderCRDsDir, err)
	}
	for _, p := range paths {
		if _, err := cp.ApplyFile(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// startControllerManager runs only the controllers the tests rely on: the
// garbage collector deletes composed resources whose XR is gone, the
// namespace controller empties deleted namespaces, and the service account
// controller makes the default accounts Crossplane expects.
func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	controllers := "garbage-collector-controller,namespace-controller,serviceaccount-controller"
	var extra []string
	if cp.cfg.InCluster {
		// kube-root-ca.crt in every namespace: pods' service account
		// token volumes project it. Deployments become pods on the node.
		// The node lifecycle controller lifts the not-ready taint the API
		// server's TaintNodesByCondition admission puts on every new node
		// (plugin/pkg/admission/nodetaint/admission.go): without it no pod
		// is ever scheduled.
		controllers += ",root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller,node-lifecycle-controller"
		extra = append(extra, "--root-ca-file="+filepath.Join(cp.Dir, "pki", "ca.crt"))
	}
	kcm, err := cp.start("kube-controller-manager", cp.baseEnv(), filepath.Join(cp.cfg.ToolsBin, "kube-controller-manager"), append([]string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--controllers=" + controllers,
		"--leader-elect=false",
		// Serve nothing: the controllers need no port of their own.
		"--secure-port=0",
		"--v=1",
	}, extra...)...)
	if err != nil {
		return err
	}
	// The service account controller making "default" in "default" proves the
	// controller-manager is up and talking to the apiserver.
	err = poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		sa := &corev1.ServiceAccount{}
		err := cp.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "default"}, sa)
		return err == nil, client.IgnoreNotFound(err)
	}, kcm)
	if err != nil {
		return fmt.Errorf("cannot see kube-controller-manager working: %w", err)
	}
	return nil
}

// waitEstablished waits until a CRD is Established.
func (cp *ControlPlane) waitEstablished(ctx context.Context, name string) error {
	err := poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := cp.Client.Get(ctx, types.NamespacedName{Name: name}, crd); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ConditionStatus(crd, "Established") == "True", nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s is not Established: %w", name, err)
	}
	return nil
}

func httpOK(ctx context.Context, hc *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	rsp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s", url, rsp.Status)
	}
	return true, nil
}

// ConditionStatus returns the status ("True", "False", "Unknown") of the
// condition of the given type in obj's status.conditions, or "" if absent.
func ConditionStatus(obj *unstructured.Unstructured, typ string) string {
	c := Condition(obj, typ)
	if c == nil {
		return ""
	}
	s, _ := c["status"].(string)
	return s
}

// Condition returns the condition of the given type, or nil.
func Condition(obj *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && strings.EqualFold(fmt.Sprint(m["type"]), typ) {
			return m
		}
	}
	return nil
}
