package deploy

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const composeFile = "compose/compose.yml"

// loadCompose loads the stack with compose-go, the loader `docker compose`
// itself uses: the file is validated against the Compose specification's
// JSON schema, interpolated and normalised, and bind mounts are resolved to
// absolute paths, as `docker compose config` prints them.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithName("openanomaly"), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// containerFS copies every bind mount of a service to its target under a
// new directory, so that the configs can be checked as the container sees
// them: relative paths inside them (rule files, pipelines) resolve as they
// will in the container.
func containerFS(t *testing.T, svc types.ServiceConfig) string {
	t.Helper()
	root := t.TempDir()
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind || v.Target == "/host" {
			continue
		}
		if _, err := os.Stat(v.Source); err != nil {
			t.Errorf("service %s mounts %s, which does not exist: %v", svc.Name, v.Source, err)
			continue
		}
		if err := copyTree(v.Source, filepath.Join(root, v.Target)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: install Debian's %s package (apt-get install %s; .ci/run does)", name, pkg, pkg)
	}
	return p
}

func runTool(t *testing.T, what string, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Errorf("%s: %s %s: %v\n%s", what, filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

var ruleFilesFound = regexp.MustCompile(`(\d+) rule files? found`)

// TestCompose checks the compose stack: the file against the Compose
// schema, the services the issue asks for, and every config file it mounts
// with that component's own tool, in the layout the container sees.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	for _, s := range []string{"openanomaly", "prometheus", "node-exporter", "victoriametrics", "alertmanager", "grafana"} {
		if _, ok := p.Services[s]; !ok {
			t.Errorf("%s: no service %s", composeFile, s)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	side := p.Services["openanomaly"]
	if side.Build == nil || side.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("service openanomaly is not built from deploy/Dockerfile: %+v", side.Build)
	}

	// Prometheus: its config and the alert rules it loads.
	prom := p.Services["prometheus"]
	if !containsArg(prom.Command, "--web.enable-remote-write-receiver") {
		t.Error("prometheus runs without --web.enable-remote-write-receiver: the sidecar's output cannot arrive")
	}
	root := containerFS(t, prom)
	out := runTool(t, "prometheus", lookTool(t, "promtool", "prometheus"), "check", "config", filepath.Join(root, "etc/prometheus/prometheus.yml"))
	if !strings.Contains(out, "openanomaly.rules.yml") || !strings.Contains(out, "SUCCESS: 10 rules found") {
		t.Errorf("promtool did not check the alert rules through the config:\n%s", out)
	}

	// Alertmanager.
	root = containerFS(t, p.Services["alertmanager"])
	runTool(t, "alertmanager", lookTool(t, "amtool", "prometheus-alertmanager"), "check-config", filepath.Join(root, "etc/alertmanager/alertmanager.yml"))

	// The sidecar: its config and the pipelines it names.
	bin := filepath.Join(t.TempDir(), "openanomaly")
	if b, err := exec.Command("go", "build", "-o", bin, "../cmd/openanomaly").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	root = containerFS(t, side)
	cfg := filepath.Join(root, configFlag(t, side.Command, "--config.file"))
	out = runTool(t, "openanomaly", bin, "check", "config", cfg)
	if m := ruleFilesFound.FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("openanomaly check config found no pipeline files for the sidecar:\n%s", out)
	}

	// Grafana: the provisioning files point at services of the stack and
	// at the dashboard as mounted.
	graf := p.Services["grafana"]
	root = containerFS(t, graf)
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL, Access string
			IsDefault                    bool           `yaml:"isDefault"`
			JSONData                     map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeStrictish(t, filepath.Join(root, "etc/grafana/provisioning/datasources/datasources.yml"), &ds)
	if len(ds.Datasources) == 0 {
		t.Error("grafana: no data sources provisioned")
	}
	for _, d := range ds.Datasources {
		if d.Type != "prometheus" {
			t.Errorf("grafana data source %s: type %q, want prometheus (the dashboard's datasource variable lists those)", d.Name, d.Type)
		}
		if !pointsAtService(p, d.URL) {
			t.Errorf("grafana data source %s: url %s is not a port of a service in the stack", d.Name, d.URL)
		}
	}
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type string
			AllowUIUpdates     bool `yaml:"allowUiUpdates"`
			Options            struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeStrictish(t, filepath.Join(root, "etc/grafana/provisioning/dashboards/dashboards.yml"), &dp)
	if len(dp.Providers) == 0 {
		t.Fatal("grafana: no dashboard provider")
	}
	if _, err := os.Stat(filepath.Join(root, dp.Providers[0].Options.Path, "openanomaly.json")); err != nil {
		t.Errorf("grafana: the dashboard provider's path %s has no openanomaly.json as mounted: %v", dp.Providers[0].Options.Path, err)
	}

	// The sidecar's config reads and writes services of the stack.
	var sc struct {
		Datasource struct {
			URL string `yaml:"url"`
		} `yaml:"datasource"`
		RemoteWrite []struct {
			URL string `yaml:"url"`
		} `yaml:"remote_write"`
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	for _, u := range append([]string{sc.Datasource.URL}, func() []string {
		var us []string
		for _, r := range sc.RemoteWrite {
			us = append(us, r.URL)
		}
		return us
	}()...) {
		if !pointsAtService(p, u) {
			t.Errorf("the sidecar's config names %s, which is not a port of a service in the stack", u)
		}
	}
}

func containsArg(cmd types.ShellCommand, arg string) bool {
	for _, a := range cmd {
		if a == arg {
			return true
		}
	}
	return false
}

// configFlag returns the value of --flag=value in cmd.
func configFlag(t *testing.T, cmd types.ShellCommand, flag string) string {
	t.Helper()
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in %v", flag, cmd)
	return ""
}

// knownPorts are the ports the stack's images listen on inside the network.
var knownPorts = map[string]int{
	"openanomaly": 9095, "prometheus": 9090, "node-exporter": 9100,
	"victoriametrics": 8428, "alertmanager": 9093, "grafana": 3000,
}

var hostPort = regexp.MustCompile(`^https?://([^:/]+):(\d+)(/|$)`)

func pointsAtService(p *types.Project, url string) bool {
	m := hostPort.FindStringSubmatch(url)
	if m == nil {
		return false
	}
	if _, ok := p.Services[m[1]]; !ok {
		return false
	}
	port, _ := strconv.Atoi(m[2])
	return knownPorts[m[1]] == port
}

// decodeStrictish decodes a YAML file into v with unknown keys rejected.
func decodeStrictish(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}
