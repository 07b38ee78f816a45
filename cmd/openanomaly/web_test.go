package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

// TestRunWebConfig runs the sidecar with a web config file that turns on TLS
// and basic auth, as --web.config.file does, and checks what clients get.
func TestRunWebConfig(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	writeFile(t, dir, "tls/server.crt", string(certPEM))
	writeFile(t, dir, "tls/server.key", string(keyPEM))
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths are relative to the web config file, as in every
	// exporter.
	webFile := writeFile(t, dir, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
basic_auth_users:
  alice: %q
`, hash))
	cfgFile := writeFile(t, dir, "openanomaly.yml", "datasource:\n  url: http://127.0.0.1:1\n")

	addr := freeAddr(t)
	var logs syncBuffer
	rc := runConfig{
		configFile:      cfgFile,
		web:             webFlags(webFile, addr),
		shutdownTimeout: 5 * time.Second,
		log:             &promslog.Config{Writer: &logs},
	}
	done := make(chan int, 1)
	go func() { done <- runSidecar(rc) }()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	base := "https://" + addr
	get := func(path, user, pass string) (*http.Response, string, error) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}

	// Wait until the server answers over TLS.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, _, err := get("/-/ready", "alice", "s3cret")
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("runSidecar returned %d before serving; logs:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready over TLS (last: %v, %v); logs:\n%s", resp, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, tc := range []struct {
		name, path, user, pass string
		want                   int
	}{
		{"no credentials", "/-/ready", "", "", http.StatusUnauthorized},
		{"wrong password", "/-/ready", "alice", "wrong", http.StatusUnauthorized},
		{"unknown user", "/-/ready", "bob", "s3cret", http.StatusUnauthorized},
		{"no credentials on /metrics", "/metrics", "", "", http.StatusUnauthorized},
		{"no credentials on /-/healthy", "/-/healthy", "", "", http.StatusUnauthorized},
		{"credentials", "/-/ready", "alice", "s3cret", http.StatusOK},
		{"credentials on /metrics", "/metrics", "alice", "s3cret", http.StatusOK},
	} {
		resp, body, err := get(tc.path, tc.user, tc.pass)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: GET %s = %d, want %d; body: %s", tc.name, tc.path, resp.StatusCode, tc.want, body)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: WWW-Authenticate = %q, want a Basic challenge", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
		if tc.want == http.StatusOK && tc.path == "/metrics" && !strings.Contains(body, "openanomaly_config_last_reload_successful 1") {
			t.Errorf("%s: /metrics lacks openanomaly_config_last_reload_successful 1:\n%s", tc.name, body)
		}
	}

	// Plain HTTP against the TLS port never reaches the handler: Go's TLS
	// server answers a plaintext request with 400 and closes.
	plain := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/-/ready", nil)
	req.SetBasicAuth("alice", "s3cret")
	if resp, err := plain.Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("plain HTTP: got %d %q, want a failure (400 from the TLS server or a transport error)", resp.StatusCode, body)
		}
	}

	// The sidecar stops on SIGTERM; signal.Notify is in place since it
	// served the first request.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("runSidecar = %d, want 0; logs:\n%s", code, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("runSidecar did not stop on SIGTERM; logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "TLS is enabled.") {
		t.Errorf("logs do not say TLS is enabled:\n%s", logs.String())
	}
}

// TestRunBadWebConfig checks that a web config that cannot work stops the
// sidecar at startup instead of failing every request.
func TestRunBadWebConfig(t *testing.T) {
	dir := t.TempDir()
	webFile := writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
	cfgFile := writeFile(t, dir, "openanomaly.yml", "datasource:\n  url: http://127.0.0.1:1\n")
	var logs syncBuffer
	rc := runConfig{
		configFile:      cfgFile,
		web:             webFlags(webFile, freeAddr(t)),
		shutdownTimeout: time.Second,
		log:             &promslog.Config{Writer: &logs},
	}
	if code := runSidecar(rc); code != 1 {
		t.Errorf("runSidecar = %d, want 1", code)
	}
	if !strings.Contains(logs.String(), "missing.crt") {
		t.Errorf("logs do not name the missing certificate:\n%s", logs.String())
	}
}

func webFlags(configFile, addr string) *toolkitweb.FlagConfig {
	systemd := false
	return &toolkitweb.FlagConfig{
		WebListenAddresses: &[]string{addr},
		WebSystemdSocket:   &systemd,
		WebConfigFile:      &configFile,
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// selfSignedCert returns a PEM certificate for 127.0.0.1 and localhost and
// its PEM private key.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "openanomaly test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// syncBuffer is a bytes.Buffer the sidecar's goroutines may log to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
