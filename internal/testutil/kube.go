package testutil

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// KubeControlPlaneEnv names the folder holding etcd, kube-apiserver and kube-controller-manager,
// as .ci/kube-control-plane builds them; unset means the repository's .cache/kube.
const KubeControlPlaneEnv = "KUBE_CONTROL_PLANE"

// KubeControllers are the controllers the tests' kube-controller-manager runs: the ones that
// roll out workloads, keep PodDisruptionBudgets' status, and clean up. No kubelet runs, so
// nothing schedules or starts pods: tests mark them Running and Ready themselves.
var KubeControllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"disruption-controller", "garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
}

// KubeControlPlane is a real Kubernetes control plane (etcd, kube-apiserver with RBAC, and
// kube-controller-manager) on loopback, one per test package: start it in TestMain.
type KubeControlPlane struct {
	// URL is the API server, https://127.0.0.1:port.
	URL string
	// CAFile verifies the API server's certificate.
	CAFile string
	// AdminToken authenticates a member of system:masters, for setting up what a test needs.
	AdminToken string
	// AdminKubeconfig is a kubeconfig file for that administrator.
	AdminKubeconfig string

	dir   string
	procs []*Process // in start order
	err   error
}

// StartKube starts a control plane from the binaries in KUBE_CONTROL_PLANE. It never fails:
// when the binaries are missing or a process does not come up, the returned plane's Require
// fails each test (in CI) or skips it (elsewhere), with the reason.
func StartKube() *KubeControlPlane {
	k := &KubeControlPlane{}
	bin := os.Getenv(KubeControlPlaneEnv)
	if bin == "" {
		_, file, _, _ := runtime.Caller(0)
		bin = filepath.Join(filepath.Dir(file), "..", "..", ".cache", "kube")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			k.err = fmt.Errorf("no %s in %s (build them with .ci/kube-control-plane %s, or set %s)", b, bin, bin, KubeControlPlaneEnv)
			return k
		}
	}
	if err := k.start(bin); err != nil {
		k.Stop()
		k.err = err
	}
	return k
}

// Require fails the test in CI and skips it elsewhere when the control plane is not running.
func (k *KubeControlPlane) Require(t testing.TB) {
	t.Helper()
	msg := ""
	if k.err != nil {
		msg = "a Kubernetes control plane: " + k.err.Error()
	}
	Require(t, k.err == nil, msg)
}

// Stop ends the processes, the API server before etcd (it hangs on SIGTERM when etcd is
// already gone), and removes their files.
func (k *KubeControlPlane) Stop() {
	for i := len(k.procs) - 1; i >= 0; i-- {
		k.procs[i].Stop()
	}
	k.procs = nil
	if k.dir != "" {
		_ = os.RemoveAll(k.dir)
	}
}

func (k *KubeControlPlane) start(bin string) error {
	dir, err := os.MkdirTemp("", "kube-control-plane-")
	if err != nil {
		return err
	}
	k.dir = dir
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "sa.key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	k.AdminToken = randomHex(16)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(tokenFile, []byte(k.AdminToken+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := k.run(bin, "etcd", "--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := k.waitHealthy("etcd", etcdURL+"/health", nil, ""); err != nil {
		return err
	}

	k.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	certDir := filepath.Join(dir, "certs")
	k.CAFile = filepath.Join(certDir, "apiserver.crt")
	if err := k.run(bin, "kube-apiserver", "--etcd-servers="+etcdURL,
		fmt.Sprintf("--secure-port=%d", ports[2]), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", "--cert-dir="+certDir,
		"--service-account-key-file="+keyFile, "--service-account-signing-key-file="+keyFile,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.0.0.0/24",
		"--token-auth-file="+tokenFile, "--authorization-mode=RBAC",
		// No token controller mints service account tokens here, so pods cannot wait for one.
		"--disable-admission-plugins=ServiceAccount"); err != nil {
		return err
	}
	if err := k.waitHealthy("kube-apiserver", k.URL+"/readyz", nil, k.AdminToken); err != nil {
		return err
	}
	k.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(k.AdminKubeconfig, []byte(k.Kubeconfig(k.AdminToken)), 0o600); err != nil {
		return err
	}

	kcmURL := fmt.Sprintf("https://127.0.0.1:%d", ports[3])
	if err := k.run(bin, "kube-controller-manager", "--kubeconfig="+k.AdminKubeconfig,
		"--authentication-kubeconfig="+k.AdminKubeconfig, "--authorization-kubeconfig="+k.AdminKubeconfig,
		"--controllers="+strings.Join(KubeControllers, ","), "--leader-elect=false",
		fmt.Sprintf("--secure-port=%d", ports[3]), "--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(dir, "kcm-certs")); err != nil {
		return err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} // its own throw-away certificate, on loopback
	return k.waitHealthy("kube-controller-manager", kcmURL+"/healthz", insecure, "")
}

// Kubeconfig is a kubeconfig document for the API server with a bearer token.
func (k *KubeControlPlane) Kubeconfig(token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: user
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: user}
current-context: test
`, k.URL, k.CAFile, token)
}

// run starts one process with its output in a log file next to its data.
func (k *KubeControlPlane) run(bin, name string, args ...string) error {
	p, err := launch(name, os.Environ(), filepath.Join(bin, name), filepath.Join(k.dir, name+".log"), setParentDeathSignal, args...)
	if err != nil {
		return err
	}
	k.procs = append(k.procs, p)
	return nil
}

// waitHealthy polls a health endpoint until it answers 200, or reports the end of the process'
// log when it does not within a minute.
func (k *KubeControlPlane) waitHealthy(name, url string, tlsCfg *tls.Config, token string) error {
	if tlsCfg == nil && strings.HasPrefix(url, "https://") {
		pool := x509.NewCertPool()
		deadline := time.Now().Add(time.Minute)
		for {
			if b, err := os.ReadFile(k.CAFile); err == nil && pool.AppendCertsFromPEM(b) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s wrote no serving certificate: %s", name, k.logTail(name))
			}
			time.Sleep(100 * time.Millisecond)
		}
		tlsCfg = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	last := ""
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within a minute (%s): %s", name, last, k.logTail(name))
}

func (k *KubeControlPlane) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(k.dir, name+".log"))
	return "\n" + lastLines(string(b), 15)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
